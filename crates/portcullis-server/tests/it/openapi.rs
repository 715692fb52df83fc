//! The Management API's OpenAPI document, and the check that every endpoint in it enforces
//! the scope it documents.

use crate::both_backends;
use crate::harness::*;
use axum::http::StatusCode;

both_backends! {
    async fn the_openapi_document_lists_every_endpoint_and_each_enforces_its_scope(app) {
        let doc = app.get("/api/v2/openapi.json", &Browser::new()).await;
        assert_eq!(doc.status, StatusCode::OK);
        let doc = doc.json();
        assert_eq!(doc["openapi"], "3.0.3");
        assert_eq!(doc["servers"][0]["url"], "http://portcullis.test");
        let endpoints = portcullis_server::management_api::endpoints();
        assert!(endpoints.len() >= 30);
        assert!(doc["components"]["schemas"]["CreateUser"]["properties"]["email"].is_object(), "schemas come from the Rust types");
        assert!(doc["components"]["schemas"]["ClientEntry"]["properties"]["callbacks"].is_object());
        let patch = &doc["paths"]["/api/v2/clients/{id}"]["patch"]["requestBody"]["content"]["application/json"]["schema"];
        assert!(patch["properties"]["name"].is_object() && patch.get("required").is_none(), "{patch}");
        let token = app.management_token("noscope-tool-id", "noscope-tool-secret-0123456789abcd").await;
        for e in &endpoints {
            let op = &doc["paths"][e.path][e.method.as_str().to_lowercase()];
            assert!(op.is_object(), "{} {} documented", e.method, e.path);
            assert_eq!(op["x-scopes"], serde_json::json!(e.scopes));
            let path = e.path.replace("{id}", "some-id");
            let body = (e.method != axum::http::Method::GET).then(|| serde_json::json!({}));
            let resp = app.api(e.method.as_str(), &path, Some(&token), body).await;
            assert_eq!(resp.status, StatusCode::FORBIDDEN, "{} {}: {}", e.method, e.path, resp.text);
            let message = resp.json()["message"].as_str().unwrap().to_owned();
            assert!(message.contains(e.scopes[0]), "{} {} asks for {message}, documents {:?}", e.method, e.path, e.scopes);
        }
    }
}
