//! The list's query parameters, and counts per status.

use std::time::SystemTime;

use serde::Deserialize;

use super::time::parse_time;
use super::view::Counts;
use crate::error::Result;
use crate::record::ListFilter;
use crate::runtime::Runtime;
use crate::status::ExecutionStatus;

/// Executions per page when the request does not say.
pub(crate) const DEFAULT_LIMIT: u32 = 50;
/// The largest page.
pub(crate) const MAX_LIMIT: u32 = 1000;

/// `?status=&workflow=&since=&until=&limit=&offset=`. Every field is text, so
/// that a bad value gets a message naming the parameter; empty values (as a
/// form sends them) count as absent.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    pub status: Option<String>,
    pub workflow: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub limit: Option<String>,
    pub offset: Option<String>,
}

fn present(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

impl ListQuery {
    /// The filter these parameters describe, or a message for a 400.
    pub fn to_filter(&self, now: SystemTime) -> std::result::Result<ListFilter, String> {
        let mut filter = ListFilter::new();
        if let Some(status) = present(&self.status) {
            filter.status = Some(
                status
                    .parse::<ExecutionStatus>()
                    .map_err(|_| bad_status(status))?,
            );
        }
        filter.workflow = present(&self.workflow).map(str::to_owned);
        if let Some(since) = present(&self.since) {
            filter.created_after =
                Some(parse_time(since, now).map_err(|e| format!("`since`: {e}"))?);
        }
        if let Some(until) = present(&self.until) {
            filter.created_before =
                Some(parse_time(until, now).map_err(|e| format!("`until`: {e}"))?);
        }
        let limit = match present(&self.limit) {
            None => DEFAULT_LIMIT,
            Some(text) => match text.parse::<u32>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
                _ => {
                    return Err(format!(
                        "`limit` must be a whole number from 1 to {MAX_LIMIT}, not `{text}`"
                    ));
                }
            },
        };
        filter.limit = Some(limit);
        filter.offset = match present(&self.offset) {
            None => None,
            Some(text) => Some(text.parse::<u32>().map_err(|_| {
                format!("`offset` must be a whole number (0 or more), not `{text}`")
            })?),
        };
        Ok(filter)
    }
}

pub(crate) fn bad_status(text: &str) -> String {
    let known: Vec<&str> = ExecutionStatus::ALL.iter().map(|s| s.as_str()).collect();
    format!(
        "unknown status `{text}`, expected one of: {}",
        known.join(", ")
    )
}

/// Counts the executions that match `filter` (its workflow and time bounds;
/// its status, limit and offset are ignored) in each status, in one query.
pub async fn count_by_status(rt: &Runtime, filter: &ListFilter) -> Result<Counts> {
    let mut counts = Counts::new();
    for (status, n) in rt.count(filter.clone()).await? {
        counts.add_many(status, n);
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> ListQuery {
        let mut q = ListQuery::default();
        for (k, v) in pairs {
            let v = Some((*v).to_owned());
            match *k {
                "status" => q.status = v,
                "workflow" => q.workflow = v,
                "since" => q.since = v,
                "until" => q.until = v,
                "limit" => q.limit = v,
                "offset" => q.offset = v,
                _ => unreachable!(),
            }
        }
        q
    }

    #[test]
    fn builds_the_filter() {
        let now = SystemTime::now();
        let f = query(&[
            ("status", "failed"),
            ("workflow", "w"),
            ("since", "1h"),
            ("limit", "10"),
            ("offset", "20"),
        ])
        .to_filter(now)
        .unwrap();
        assert_eq!(f.status, Some(ExecutionStatus::Failed));
        assert_eq!(f.workflow.as_deref(), Some("w"));
        assert_eq!(
            f.created_after,
            Some(now - std::time::Duration::from_secs(3600))
        );
        assert_eq!((f.limit, f.offset), (Some(10), Some(20)));
        let f = query(&[("status", ""), ("limit", " ")])
            .to_filter(now)
            .unwrap();
        assert_eq!((f.status, f.limit), (None, Some(DEFAULT_LIMIT)));
    }

    #[test]
    fn names_the_bad_parameter() {
        let now = SystemTime::now();
        for (pairs, needle) in [
            (&[("status", "done")][..], "unknown status `done`"),
            (&[("since", "soon")][..], "`since`"),
            (&[("until", "x")][..], "`until`"),
            (&[("limit", "0")][..], "`limit`"),
            (&[("limit", "5000")][..], "`limit`"),
            (&[("offset", "-1")][..], "`offset`"),
        ] {
            let err = query(pairs).to_filter(now).unwrap_err();
            assert!(err.contains(needle), "{err}");
        }
    }
}
