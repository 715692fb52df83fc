//! `/api/v2/`: the audit trail, with its query parameters.

use super::paging::PageParams;
use super::{ApiResult, Scope, query};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use portcullis_core::audit::LogEvent;
use portcullis_core::management::ReadLogs;
use serde::Deserialize;

/// Query parameters of the log search.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
pub struct LogParams {
    pub page: Option<i64>,
    pub per_page: Option<i64>,
    pub include_totals: Option<bool>,
    pub sort: Option<String>,
    pub q: Option<String>,
    pub take: Option<i64>,
    pub from: Option<String>,
    pub fields: Option<String>,
    pub include_fields: Option<bool>,
}

/// `GET /api/v2/logs`: newest first unless `sort=date:1`.
pub async fn list_logs(
    State(state): State<AppState>,
    Scope(granted): Scope<ReadLogs>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let params: LogParams = query(q.as_deref())?;
    let paging = PageParams {
        page: params.page,
        per_page: params.per_page,
        include_totals: params.include_totals,
        take: params.take,
        from: params.from.clone(),
        ..PageParams::default()
    };
    let window = paging.window()?;
    let page = state
        .core
        .audit_log()
        .list_logs(granted, params.q.as_deref(), params.sort.as_deref(), window)
        .await?;
    Ok(Json(paging.answer(
        &page,
        "logs",
        window,
        LogEvent::to_json,
    )))
}

/// `GET /api/v2/logs/{id}`.
pub async fn get_log(
    State(state): State<AppState>,
    Scope(granted): Scope<ReadLogs>,
    Path(id): Path<String>,
) -> ApiResult {
    Ok(Json(
        state
            .core
            .audit_log()
            .get_log(granted, &id)
            .await?
            .to_json(),
    ))
}
