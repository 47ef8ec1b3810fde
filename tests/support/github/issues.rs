//! Issues, their comments and labels.

use super::*;

/// The routes of this resource; `None` for a request that is not one of them.
pub(super) fn route(w: &mut World, request: &Request) -> Option<Answer> {
    let Request { method, segs, query, body, .. } = *request;
    Some(match (method.as_str(), segs) {
        (_, ["repos", _, _, "issues", ..]) | (_, ["repos", _, _, "labels"]) => {
            issues(w, method, segs, query, body)
        }
        _ => return None,
    })
}

pub(super) fn issue_json(i: &Issue, repo: &str) -> Value {
    let mut v = first("GET /repos/{owner}/{repo}/issues");
    v["number"] = i.number.into();
    v["id"] = (i.number + 9_000_000).into();
    v["title"] = i.title.clone().into();
    v["body"] = i.body.clone().into();
    v["state"] = i.state.clone().into();
    v["html_url"] = format!("https://github.com/{repo}/issues/{}", i.number).into();
    let label = v["labels"][0].clone();
    v["labels"] = i
        .labels
        .iter()
        .map(|l| {
            let mut lv = label.clone();
            lv["name"] = l.clone().into();
            lv
        })
        .collect::<Vec<_>>()
        .into();
    if let Some(map) = v.as_object_mut() {
        map.remove("pull_request");
    }
    v
}

pub(super) fn issues(
    w: &mut World,
    method: &Method,
    segs: &[&str],
    query: &BTreeMap<String, String>,
    body: &Value,
) -> Answer {
    let key = repo_key(segs);
    match (method.as_str(), &segs[3..]) {
        ("POST", ["labels"]) => {
            let Some(name) = body["name"].as_str() else {
                return validation(
                    "Invalid request.\n\n\"name\" wasn't supplied.",
                    "missing_field",
                );
            };
            if !w.repos.get_mut(&key).unwrap().labels.insert(name.into()) {
                return validation("Validation Failed", "already_exists");
            }
            let mut a = example("POST /repos/{owner}/{repo}/labels");
            a["name"] = name.into();
            answer(201, a)
        }
        ("GET", ["issues"]) => {
            let labels: Vec<&str> =
                query.get("labels").map(|l| l.split(',').collect()).unwrap_or_default();
            let state = query.get("state").map(String::as_str).unwrap_or("open");
            let list: Vec<Value> = w.repos[&key]
                .issues
                .iter()
                .filter(|i| state == "all" || i.state == state)
                .filter(|i| labels.iter().all(|l| i.labels.iter().any(|x| x == l)))
                .map(|i| issue_json(i, &key))
                .collect();
            paged(list, query)
        }
        ("POST", ["issues"]) => {
            let Some(title) = body["title"].as_str() else {
                return validation(
                    "Invalid request.\n\n\"title\" wasn't supplied.",
                    "missing_field",
                );
            };
            let number = w.id();
            let issue = Issue {
                number,
                title: title.into(),
                body: body["body"].as_str().unwrap_or_default().into(),
                state: "open".into(),
                labels: body["labels"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|l| l.as_str().map(str::to_string))
                    .collect(),
                comments: Vec::new(),
            };
            let mut v = example("POST /repos/{owner}/{repo}/issues");
            let shaped = issue_json(&issue, &key);
            for k in ["number", "id", "title", "body", "state", "html_url", "labels"] {
                v[k] = shaped[k].clone();
            }
            w.repos.get_mut(&key).unwrap().issues.push(issue);
            answer(201, v)
        }
        (_, ["issues", n, rest @ ..]) => {
            let r = w.repos.get_mut(&key).unwrap();
            let Some(issue) = r.issues.iter_mut().find(|i| i.number.to_string() == *n) else {
                return error(404, "Not Found");
            };
            match (method.as_str(), rest) {
                ("PATCH", []) => {
                    if let Some(b) = body["body"].as_str() {
                        issue.body = b.into();
                    }
                    if let Some(s) = body["state"].as_str() {
                        issue.state = s.into();
                    }
                    let shaped = issue_json(issue, &key);
                    let mut v = example("PATCH /repos/{owner}/{repo}/issues/{issue_number}");
                    for k in ["number", "id", "title", "body", "state", "html_url", "labels"] {
                        v[k] = shaped[k].clone();
                    }
                    answer(200, v)
                }
                ("POST", ["comments"]) => {
                    issue.comments.push(body["body"].as_str().unwrap_or_default().into());
                    let mut v =
                        example("POST /repos/{owner}/{repo}/issues/{issue_number}/comments");
                    v["body"] = body["body"].clone();
                    answer(201, v)
                }
                _ => error(404, "Not Found"),
            }
        }
        _ => error(404, "Not Found"),
    }
}
