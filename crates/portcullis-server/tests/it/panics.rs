//! A panic in a handler answers a 500 in its surface's own shape instead of dropping the
//! connection.

use crate::both_backends;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;

async fn boom() -> &'static str {
    panic!("a handler bug")
}

both_backends! {
    async fn a_panic_answers_500_in_the_shape_of_its_surface(app) {
        let state = portcullis_server::app_state(app.core.clone(), portcullis_server::HttpOptions::default()).unwrap();
        let routes = axum::Router::new()
            .route("/oauth/boom", axum::routing::post(boom))
            .route("/api/v2/boom", axum::routing::get(boom))
            .route("/u/boom", axum::routing::get(boom));
        let router = portcullis_server::router::layered(routes, state);
        let call = |method: &str, path: &str| {
            let router = router.clone();
            let request = Request::builder().method(method).uri(path).body(Body::empty()).unwrap();
            async move {
                let response = router.oneshot(request).await.unwrap();
                let status = response.status();
                let headers = response.headers().clone();
                let body = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
                (status, headers, String::from_utf8_lossy(&body).into_owned())
            }
        };
        let (status, headers, body) = call("POST", "/oauth/boom").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["error"], "server_error");
        assert!(!body.contains("handler bug"), "the panic message stays in the log");
        assert_eq!(headers["cache-control"], "no-store");
        assert_eq!(headers["x-frame-options"], "DENY");

        let (status, _, body) = call("GET", "/api/v2/boom").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["statusCode"], 500);
        assert_eq!(json["errorCode"], "internal_error");

        let (status, headers, body) = call("GET", "/u/boom").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(headers["content-type"].to_str().unwrap().starts_with("text/html"));
        assert!(body.contains("Something went wrong"), "{body}");
        let request_id = headers["x-request-id"].to_str().unwrap();
        assert!(body.contains(request_id), "the page names the request id");
        assert!(!body.contains("handler bug"));
    }
}
