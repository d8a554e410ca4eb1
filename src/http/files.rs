//! Uploaded files (KYC documents, dispute evidence): read from a multipart
//! field, bounded in size, recognised by their content (PNG, JPEG or PDF,
//! never by name); served back only as downloads, never rendered in the
//! API's origin.

use axum::extract::multipart::Field;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use crate::domain::kyc::{DocumentType, MAX_DOCUMENT_BYTES};

/// The request body limit of the upload routes: the largest file plus room
/// for the other fields and the multipart framing.
pub const MULTIPART_LIMIT: usize = MAX_DOCUMENT_BYTES + 64 * 1024;

/// Reads one file field: None when empty, 413 past 5 MiB, 415 when it is
/// not a PNG, JPEG or PDF. `name` is the field's name, for the messages.
pub async fn read(field: Field<'_>, name: &str) -> Result<Option<(DocumentType, Vec<u8>)>, ApiError> {
    let bytes = field
        .bytes()
        .await
        .map_err(|e| ApiError::from_status(e.status(), e.body_text()))?;
    if bytes.len() > MAX_DOCUMENT_BYTES {
        return Err(ApiError::from_status(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("{name} must be at most {} MiB", MAX_DOCUMENT_BYTES / 1024 / 1024),
        ));
    }
    if bytes.is_empty() {
        return Ok(None);
    }
    let kind = DocumentType::sniff(&bytes).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            format!("{name} must be a PNG, JPEG or PDF file (checked by its content, not its name)"),
        )
    })?;
    Ok(Some((kind, bytes.to_vec())))
}

/// A stored file as a download named `<stem>.<extension>`: an uploaded file
/// must not run as a page of ours, whatever it contains.
pub fn download(content_type: &str, bytes: Vec<u8>, stem: &str) -> Result<Response, ApiError> {
    let extension = match content_type {
        "application/pdf" => "pdf",
        "image/png" => "png",
        _ => "jpg",
    };
    let content_type = HeaderValue::from_str(content_type).map_err(ApiError::internal)?;
    let disposition =
        HeaderValue::from_str(&format!("attachment; filename=\"{stem}.{extension}\"")).map_err(ApiError::internal)?;
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("default-src 'none'; sandbox"),
            ),
        ],
        bytes,
    )
        .into_response())
}

/// A stored document shown inside a console page (an `<img>` or a frame of
/// the same origin), never cached.
pub fn inline(content_type: &str, bytes: Vec<u8>) -> Result<Response, ApiError> {
    let content_type = HeaderValue::from_str(content_type).map_err(ApiError::internal)?;
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_DISPOSITION, HeaderValue::from_static("inline")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (header::X_FRAME_OPTIONS, HeaderValue::from_static("SAMEORIGIN")),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("default-src 'none'; frame-ancestors 'self'"),
            ),
        ],
        bytes,
    )
        .into_response())
}
