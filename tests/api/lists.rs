//! Lists that stay fast as data grows: a page costs the same statements
//! whatever its size or depth, and a cursor walks a long list exactly.

use reqwest::Method;
use serde_json::{Value, json};

use crate::both_engines;
use crate::helpers::{Engine, TestApp, TestDb, TestUser};

both_engines!(a_project_list_is_three_statements_and_a_cursor_walks_it_exactly);

/// Statements run for projects and milestones so far (background work
/// touches neither).
async fn project_statements(app: &TestApp) -> f64 {
    let text = crate::metrics::scrape(app).await;
    crate::metrics::samples(&text, "db_query_duration_seconds_count")
        .iter()
        .filter(|l| l.contains("operation=\"projects.") || l.contains("operation=\"milestones."))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn list(app: &TestApp, user: &TestUser, query: &str) -> (u16, Value) {
    crate::helpers::json(
        app.authed(Method::GET, &format!("/api/v1/projects?{query}"), &user.token)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn a_project_list_is_three_statements_and_a_cursor_walks_it_exactly(engine: Engine) {
    let db = TestDb::create(engine).await;
    let app = TestApp::spawn(&db).await;
    let buyer = app.user("client").await;
    let seller = app.user("freelancer").await;
    let other = app.user("client").await;
    // 45 projects; project i has (i % 3) + 1 milestones.
    let mut created = Vec::new();
    for i in 0..45 {
        let milestones: Vec<Value> = (0..=(i % 3))
            .map(|m| json!({"title": format!("m{m}"), "amount": 100 + m}))
            .collect();
        let (status, project) = crate::helpers::json(
            app.authed(Method::POST, "/api/v1/projects", &buyer.token)
                .json(&json!({"title": format!("p{i}"), "seller_id": seller.id, "currency": "NGN", "milestones": milestones}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 201, "{project}");
        created.push(project["id"].as_str().unwrap().to_owned());
    }
    let newest_first: Vec<String> = created.iter().rev().cloned().collect();

    // A page of 20 with every milestone: three statements, not one per row.
    let before = project_statements(&app).await;
    let (status, page) = list(&app, &buyer, "page_size=20").await;
    let statements = project_statements(&app).await - before;
    assert_eq!(status, 200, "{page}");
    assert_eq!(statements, 3.0, "page, count and the page's milestones");
    assert_eq!(
        (page["total"].as_i64(), page["has_more"].as_bool()),
        (Some(45), Some(true))
    );
    for item in page["items"].as_array().unwrap() {
        let title = item["title"].as_str().unwrap();
        let i: usize = title[1..].parse().unwrap();
        let milestones = item["milestones"].as_array().unwrap();
        assert_eq!(milestones.len(), i % 3 + 1, "{title}: its own milestones only");
        assert!(milestones.iter().all(|m| m["project_id"] == item["id"]), "{item}");
        assert_eq!(milestones[0]["position"], 1, "in position order");
    }

    // Walking by cursor gives every project once, newest first, and the
    // same order as paging by number.
    let mut walked = Vec::new();
    let mut query = "page_size=20".to_owned();
    loop {
        let (status, page) = list(&app, &buyer, &query).await;
        assert_eq!(status, 200, "{page}");
        walked.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => {
                assert_eq!(page["has_more"], true);
                query = format!("page_size=20&after={cursor}");
            }
            None => {
                assert_eq!(page["has_more"], false, "{page}");
                break;
            }
        }
    }
    assert_eq!(walked, newest_first);
    // A page by cursor is not counted: the cursor's check, the page and its
    // milestones, however deep.
    let before = project_statements(&app).await;
    let (_, deep) = list(&app, &buyer, &format!("page_size=20&after={}", walked[39])).await;
    assert_eq!(project_statements(&app).await - before, 3.0);
    assert_eq!(
        (deep["items"].as_array().unwrap().len(), deep["total"].is_null()),
        (5, true),
        "{deep}"
    );
    let (_, third) = list(&app, &buyer, "page_size=20&page=3").await;
    let third: Vec<&str> = third["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(third, walked[40..].iter().map(String::as_str).collect::<Vec<_>>());
    // The seller sees the same list from their side.
    let (_, sellers) = list(&app, &seller, "page_size=100").await;
    assert_eq!(sellers["total"], 45);

    // A cursor the caller cannot see, or both ways of paging at once: 422.
    let (status, problem) = list(&app, &other, &format!("after={}", created[0])).await;
    assert_eq!(status, 422, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("after"), "{problem}");
    let (status, _) = list(&app, &buyer, &format!("page=2&after={}", created[0])).await;
    assert_eq!(status, 422);
    let (_, empty) = list(&app, &other, "").await;
    assert_eq!(
        (empty["total"].as_i64(), empty["next_cursor"].is_null()),
        (Some(0), true)
    );
}
