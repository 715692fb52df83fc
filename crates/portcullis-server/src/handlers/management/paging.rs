//! Paging on the wire: Auth0's `page`/`per_page`/`include_totals`, and its checkpoint form
//! `take`/`from`, read into a [`Window`] for the services and written back around a page.

use portcullis_core::management::{ManagementError, Window};
use portcullis_core::store::Page;
use serde::Deserialize;
use serde_json::{Value, json};

/// Paging parameters of the lists (and the roles list's `name_filter`).
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
pub struct PageParams {
    pub page: Option<i64>,
    pub per_page: Option<i64>,
    pub include_totals: Option<bool>,
    pub name_filter: Option<String>,
    pub take: Option<i64>,
    pub from: Option<String>,
}

impl PageParams {
    /// The part of the list asked for.
    pub fn window(&self) -> Result<Window, ManagementError> {
        if let Some(take) = self.take {
            if !(1..=100).contains(&take) {
                return Err(ManagementError::invalid_query("take must be 1 to 100"));
            }
            let from = match self.from.as_deref() {
                None | Some("") => 0,
                Some(f) => f.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                    ManagementError::invalid_query("from is not a checkpoint this server issued")
                })?,
            };
            return Ok(Window {
                start: from,
                limit: take,
            });
        }
        let per_page = self.per_page.unwrap_or(50);
        let page = self.page.unwrap_or(0);
        if !(1..=100).contains(&per_page) || page < 0 {
            return Err(ManagementError::invalid_query(
                "per_page must be 1 to 100 and page 0 or more",
            ));
        }
        let start = page
            .checked_mul(per_page)
            .ok_or_else(|| ManagementError::invalid_query("page is too large"))?;
        Ok(Window {
            start,
            limit: per_page,
        })
    }

    /// `page` in the form the caller asked for, each item rendered by `item`: a bare array,
    /// Auth0's totals object under `key`, or a checkpoint page with `next`.
    pub fn answer<T>(
        &self,
        page: &Page<T>,
        key: &str,
        window: Window,
        item: impl Fn(&T) -> Value,
    ) -> Value {
        let items: Vec<Value> = page.items.iter().map(item).collect();
        if self.take.is_some() {
            let next = window
                .start
                .saturating_add(i64::try_from(items.len()).unwrap_or(0));
            let mut v = json!({ key: items });
            if next < page.total {
                v["next"] = Value::String(next.to_string());
            }
            return v;
        }
        if self.include_totals.unwrap_or(false) {
            json!({ "start": window.start, "limit": window.limit, "total": page.total, key: items })
        } else {
            Value::Array(items)
        }
    }
}
