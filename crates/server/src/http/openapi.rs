//! `GET /openapi.json`: the OpenAPI 3 document of the API, kept beside the code (no download or
//! generation at build time). A test checks that every route of the router is documented.

use axum::http::header;
use axum::response::IntoResponse;

/// The document, as shipped in the binary.
pub const DOCUMENT: &str = include_str!("openapi.json");

/// Serves [`DOCUMENT`].
pub async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}
