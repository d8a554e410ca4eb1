//! The JSON log: one object per line, every line of a request correlated.

use crate::server::Server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_line_of_a_request_carries_its_request_id_and_trace_id() {
    let server = Server::start(&[("LOG_LEVEL", "debug")]);
    server.wait_until_ready().await;
    let client = reqwest::Client::new();
    let response = client
        .get(server.url("/api/v1/health?password=hunter2"))
        .header("x-request-id", "log-test-42")
        .header("authorization", "Bearer secret-bearer-token")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    client
        .get(server.url("/api/v1/nope"))
        .header("x-request-id", "log-test-43")
        .send()
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let output = server.output();
    let logs = server.logs();
    let ours: Vec<&serde_json::Value> = logs.iter().filter(|l| l["request_id"] == "log-test-42").collect();
    assert!(!ours.is_empty(), "{output:#?}");
    let trace_id = ours[0]["trace_id"].as_str().expect("trace_id").to_owned();
    assert_eq!(trace_id.len(), 32);
    for line in &ours {
        assert_eq!(line["trace_id"], trace_id.as_str(), "{line}");
        for field in ["timestamp", "level", "target", "message", "span_id"] {
            assert!(line.get(field).is_some(), "{field} missing: {line}");
        }
        assert!(line["timestamp"].as_str().unwrap().ends_with('Z'));
        // From the request's span, which names it `http.request.method`.
        assert_eq!(line["method"], "GET", "{line}");
        assert!(line.get("http.request.method").is_none(), "{line}");
    }
    assert!(
        ours.len() > 1,
        "lines inside the request besides its access line: {ours:#?}"
    );
    let access = ours
        .iter()
        .find(|l| l["message"] == "request completed")
        .expect("access log line");
    assert_eq!(access["route"], "/api/v1/health");
    assert_eq!(access["method"], "GET");
    assert_eq!(access["status"], 200);
    assert!(access["latency_ms"].as_f64().is_some());

    // The other request has its own ids.
    let other = logs
        .iter()
        .find(|l| l["request_id"] == "log-test-43")
        .expect("second request");
    assert_ne!(other["trace_id"], trace_id.as_str());
    assert_eq!(other["route"], "unmatched");

    // Every stdout line is a JSON object, and nothing secret was written.
    let all = output.join("\n");
    for secret in ["hunter2", "secret-bearer-token"] {
        assert!(!all.contains(secret), "{secret} reached the log");
    }
}
