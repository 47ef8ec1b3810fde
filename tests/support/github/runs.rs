//! Workflow dispatches and their runs.

use super::*;

/// The routes of this resource; `None` for a request that is not one of them.
pub(super) fn route(w: &mut World, request: &Request) -> Option<Answer> {
    let Request { method, segs, query, body, .. } = *request;
    Some(match (method.as_str(), segs) {
        ("POST", ["repos", _, _, "actions", "workflows", wf, "dispatches"]) => {
            let key = repo_key(segs);
            let Some(git_ref) = body["ref"].as_str() else {
                return Some(validation(
                    "Invalid request.\n\n\"ref\" wasn't supplied.",
                    "missing_field",
                ));
            };
            if !w.repos[&key].refs.contains_key(git_ref) {
                return Some(validation(&format!("No ref found for: {git_ref}"), "invalid"));
            }
            let id = w.id();
            let r = w.repos.get_mut(&key).unwrap();
            let (status, mut conclusion) = r
                .workflow_outcome
                .get(*wf)
                .cloned()
                .unwrap_or(("completed".into(), Some("success".into())));
            if let Some((input, value)) = r.accept_input.get(*wf)
                && body["inputs"][input.as_str()].as_str() != Some(value.as_str())
            {
                conclusion = Some("failure".into());
            }
            let runs = r.runs.entry(wf.to_string()).or_default();
            let number = runs.len() as u64 + 1;
            runs.push(Run {
                id,
                number,
                status,
                conclusion,
                created_at: now(),
                inputs: body["inputs"].clone(),
                git_ref: git_ref.into(),
            });
            empty(204)
        }
        ("GET", ["repos", _, _, "actions", "workflows", wf, "runs"]) => {
            let key = repo_key(segs);
            let mut a = example("GET /repos/{owner}/{repo}/actions/workflows/{workflow_id}/runs");
            let template = a["workflow_runs"][0].clone();
            let runs: Vec<Value> = w.repos[&key]
                .runs
                .get(*wf)
                .into_iter()
                .flatten()
                .rev()
                // Every run here is a workflow_dispatch run.
                .filter(|_| query.get("event").is_none_or(|e| e == "workflow_dispatch"))
                .map(|r| {
                    let mut v = template.clone();
                    v["id"] = r.id.into();
                    v["run_number"] = r.number.into();
                    v["status"] = r.status.clone().into();
                    v["conclusion"] = r.conclusion.clone().map_or(Value::Null, Value::from);
                    v["created_at"] = r.created_at.clone().into();
                    v["updated_at"] = r.created_at.clone().into();
                    v["event"] = "workflow_dispatch".into();
                    v["head_branch"] = r.git_ref.clone().into();
                    v["html_url"] =
                        format!("https://github.com/{key}/actions/runs/{}", r.id).into();
                    v
                })
                .collect();
            a["total_count"] = runs.len().into();
            a["workflow_runs"] = runs.into();
            answer(200, a)
        }
        _ => return None,
    })
}
