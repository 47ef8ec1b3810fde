//! Pull requests, their files and reviews; collaborators' permissions and team
//! memberships, which the gate reads.

use super::*;

/// The routes of this resource; `None` for a request that is not one of them.
pub(super) fn route(w: &mut World, request: &Request) -> Option<Answer> {
    let Request { method, segs, actor, query, body, .. } = *request;
    let not_found = || error(404, "Not Found");
    Some(match (method.as_str(), segs) {
        (_, ["repos", _, _, "pulls", ..]) => pulls(w, actor, method, segs, query, body),
        ("GET", ["repos", _, _, "collaborators", login, "permission"]) => {
            let key = repo_key(segs);
            let permission =
                w.repos[&key].collaborators.get(*login).cloned().unwrap_or_else(|| "none".into());
            let mut a = example("GET /repos/{owner}/{repo}/collaborators/{username}/permission");
            a["permission"] = match permission.as_str() {
                "maintain" => "write",
                "triage" => "read",
                other => other,
            }
            .into();
            a["role_name"] = permission.into();
            a["user"]["login"] = (*login).into();
            answer(200, a)
        }
        ("GET", ["orgs", org, "teams", team, "memberships", login]) => {
            if w.teams.get(&format!("{org}/{team}")).is_some_and(|m| m.contains(*login)) {
                let mut a = example("GET /orgs/{org}/teams/{team_slug}/memberships/{username}");
                a["state"] = "active".into();
                answer(200, a)
            } else {
                not_found()
            }
        }
        _ => return None,
    })
}

pub(super) fn pull_json(w: &World, repo: &str, p: &Pull, full: bool) -> Value {
    let op = if full {
        "GET /repos/{owner}/{repo}/pulls/{pull_number}"
    } else {
        "GET /repos/{owner}/{repo}/pulls"
    };
    let mut v = if full { example(op) } else { first(op) };
    v["number"] = p.number.into();
    v["id"] = (p.number + 7_000_000).into();
    v["title"] = p.title.clone().into();
    v["body"] = p.body.clone().into();
    v["state"] = p.state.clone().into();
    v["user"] = user_object(&p.user, w.user_id(&p.user));
    v["html_url"] = format!("https://github.com/{repo}/pull/{}", p.number).into();
    v["head"]["ref"] = p.head.clone().into();
    v["head"]["sha"] = w.repos[repo].refs.get(&p.head).cloned().unwrap_or_default().into();
    v["head"]["label"] = format!("{}:{}", w.repos[repo].owner, p.head).into();
    v["base"]["ref"] = p.base.clone().into();
    v["base"]["label"] = format!("{}:{}", w.repos[repo].owner, p.base).into();
    v["merged_at"] = p.merged_at.clone().map_or(Value::Null, Value::from);
    v["merge_commit_sha"] = p.merge_sha.clone().map_or(Value::Null, Value::from);
    if full {
        v["merged"] = p.merged_at.is_some().into();
        v["merged_by"] = p.merged_by.as_ref().map_or(Value::Null, |m| user_object(m, w.user_id(m)));
    }
    v
}

pub(super) fn pulls(
    w: &mut World,
    actor: &Actor,
    method: &Method,
    segs: &[&str],
    query: &BTreeMap<String, String>,
    body: &Value,
) -> Answer {
    let key = repo_key(segs);
    match (method.as_str(), &segs[3..]) {
        ("GET", ["pulls"]) => {
            let head =
                query.get("head").and_then(|h| h.split_once(':')).map(|(_, b)| b.to_string());
            let state = query.get("state").map(String::as_str).unwrap_or("open");
            let list: Vec<Value> = w.repos[&key]
                .pulls
                .iter()
                .rev()
                .filter(|p| head.as_ref().is_none_or(|h| *h == p.head))
                .filter(|p| state == "all" || p.state == state)
                .map(|p| pull_json(w, &key, p, false))
                .collect();
            answer(200, Value::Array(list))
        }
        ("POST", ["pulls"]) => {
            let (Some(head), Some(base), Some(title)) =
                (body["head"].as_str(), body["base"].as_str(), body["title"].as_str())
            else {
                return validation(
                    "Invalid request.\n\n\"head\", \"base\" and \"title\" are required.",
                    "missing_field",
                );
            };
            let refs = &w.repos[&key].refs;
            if !refs.contains_key(head) || !refs.contains_key(base) {
                return validation("Validation Failed: head or base does not exist", "invalid");
            }
            if w.repos[&key].pulls.iter().any(|p| p.head == head && p.state == "open") {
                return validation(
                    &format!("A pull request already exists for {}:{head}.", w.repos[&key].owner),
                    "custom",
                );
            }
            if refs[head] == refs[base] {
                return validation(&format!("No commits between {base} and {head}"), "custom");
            }
            let user = match actor {
                Actor::Installation { .. } | Actor::App => BOT.to_string(),
                Actor::User(login) => login.clone(),
                Actor::Workflow { .. } => "github-actions[bot]".to_string(),
            };
            let base_sha = refs[base].clone();
            let number = w.id();
            let pull = Pull {
                number,
                user,
                title: title.into(),
                body: body["body"].as_str().unwrap_or_default().into(),
                head: head.into(),
                base: base.into(),
                base_sha,
                state: "open".into(),
                merged_by: None,
                merged_at: None,
                merge_sha: None,
                reviews: Vec::new(),
            };
            let v = pull_json(w, &key, &pull, true);
            w.repos.get_mut(&key).unwrap().pulls.push(pull);
            answer(201, v)
        }
        (_, ["pulls", n, rest @ ..]) => {
            let Some(pull) =
                w.repos[&key].pulls.iter().find(|p| p.number.to_string() == *n).cloned()
            else {
                return error(404, "Not Found");
            };
            match rest {
                [] => answer(200, pull_json(w, &key, &pull, true)),
                ["files"] => {
                    let template = first("GET /repos/{owner}/{repo}/pulls/{pull_number}/files");
                    let files: Vec<Value> = w
                        .pull_files(&key, &pull)
                        .into_iter()
                        .map(|(path, status)| {
                            let mut f = template.clone();
                            f["filename"] = path.into();
                            f["status"] = status.into();
                            f
                        })
                        .collect();
                    paged(files, query)
                }
                ["reviews"] => {
                    let template = first("GET /repos/{owner}/{repo}/pulls/{pull_number}/reviews");
                    let reviews: Vec<Value> = pull
                        .reviews
                        .iter()
                        .map(|r| {
                            let mut v = template.clone();
                            v["id"] = r.id.into();
                            v["user"] = user_object(&r.user, w.user_id(&r.user));
                            v["state"] = r.state.clone().into();
                            v["commit_id"] = r.commit_id.clone().into();
                            v["submitted_at"] = r.submitted_at.clone().into();
                            v
                        })
                        .collect();
                    paged(reviews, query)
                }
                _ => error(404, "Not Found"),
            }
        }
        _ => error(404, "Not Found"),
    }
}
