//! Lists read to the end: GitHub pages them and says in the `Link` header whether a
//! next page exists.

use http::HeaderMap;
use serde_json::Value;

use super::{Call, GitHub, GithubError};

/// Items per page of a list: GitHub's largest.
pub const PER_PAGE: usize = 100;
/// Pages of one list read before giving up.
pub const MAX_PAGES: usize = 50;

/// Whether a `Link` header (RFC 8288, as GitHub sends it) names a `rel="next"` page.
fn has_next_page(headers: &HeaderMap) -> bool {
    headers.get_all("link").iter().any(|v| {
        v.to_str().is_ok_and(|text| {
            text.split(',').any(|link| {
                link.split(';').skip(1).any(|param| {
                    let param = param.trim().replace(' ', "");
                    param == "rel=\"next\"" || param == "rel=next"
                })
            })
        })
    })
}

impl GitHub {
    /// Every item of a paginated list: `path` (which may carry a query) is read page by
    /// page, 100 items a page, for as long as GitHub's `Link` header names a next page.
    /// `key` picks the array out of a wrapped answer (`{"total_count", "variables": []}`).
    /// Past [`MAX_PAGES`] pages it fails rather than judge on part of a list.
    pub async fn list(
        &self,
        endpoint: &'static str,
        path: &str,
        key: Option<&str>,
    ) -> Result<Vec<Value>, GithubError> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut items = Vec::new();
        for page in 1..=MAX_PAGES {
            let reply = self
                .expect(
                    &Call::read(endpoint, format!("{path}{sep}per_page={PER_PAGE}&page={page}")),
                    &[],
                )
                .await?;
            let v: Value = reply.json()?;
            let listed = match key {
                Some(k) => v.get(k).cloned().unwrap_or(Value::Null),
                None => v,
            };
            match listed {
                Value::Array(page_items) => items.extend(page_items),
                _ => {
                    return Err(GithubError::Decode(format!(
                        "{endpoint} answered with something other than a list"
                    )));
                }
            }
            if !has_next_page(&reply.headers) {
                return Ok(items);
            }
        }
        Err(GithubError::Decode(format!(
            "{endpoint} lists more than {} items ({MAX_PAGES} pages); rotagate does not decide on part of a list, so clean up the list (old reviews, issues) or report this",
            MAX_PAGES * PER_PAGE
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_next_page_is_read_from_the_link_header() {
        let mut h = HeaderMap::new();
        assert!(!has_next_page(&h));
        h.insert(
            "link",
            r#"<https://api.github.com/repositories/1/pulls/2/reviews?page=2>; rel="next", <https://api.github.com/repositories/1/pulls/2/reviews?page=3>; rel="last""#
                .parse()
                .unwrap(),
        );
        assert!(has_next_page(&h));
        h.insert(
            "link",
            r#"<https://api.github.com/x?page=1>; rel="prev", <https://api.github.com/x?page=1>; rel="first""#
                .parse()
                .unwrap(),
        );
        assert!(!has_next_page(&h));
    }
}
