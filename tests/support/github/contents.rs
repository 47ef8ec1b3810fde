//! Contents, branches and their rules, the git data API and commit lists.

use super::*;

/// The routes of this resource; `None` for a request that is not one of them.
pub(super) fn route(w: &mut World, request: &Request) -> Option<Answer> {
    let Request { method, segs, query, body, .. } = *request;
    let not_found = || error(404, "Not Found");
    Some(match (method.as_str(), segs) {
        ("GET", ["repos", _, _, "contents", rest @ ..]) => {
            let key = repo_key(segs);
            let path = rest.join("/");
            let git_ref =
                query.get("ref").cloned().unwrap_or_else(|| w.repos[&key].default_branch.clone());
            match w.file(&key, &git_ref, &path) {
                Some((sha, bytes)) => {
                    let mut a = example("GET /repos/{owner}/{repo}/contents/{path}");
                    a["type"] = "file".into();
                    a["encoding"] = "base64".into();
                    a["size"] = bytes.len().into();
                    a["name"] = path.rsplit('/').next().unwrap().into();
                    a["path"] = path.clone().into();
                    a["sha"] = sha.into();
                    // Over 1 MB the contents API leaves the content out.
                    a["content"] = if bytes.len() > 1_000_000 {
                        "".into()
                    } else {
                        wrapped_b64(&bytes).into()
                    };
                    answer(200, a)
                }
                None => not_found(),
            }
        }
        ("PUT", ["repos", _, _, "contents", rest @ ..]) => {
            let key = repo_key(segs);
            let path = rest.join("/");
            let branch = body["branch"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| w.repos[&key].default_branch.clone());
            let (Some(message), Some(content)) =
                (body["message"].as_str(), body["content"].as_str())
            else {
                return Some(validation(
                    "Invalid request.\n\n\"message\" and \"content\" are required.",
                    "missing_field",
                ));
            };
            if !w.repos[&key].refs.contains_key(&branch) {
                return Some(error(404, &format!("Branch {branch} not found")));
            }
            let Ok(bytes) = STANDARD.decode(content) else {
                return Some(validation("content is not valid Base64", "invalid"));
            };
            let existing = w.file(&key, &branch, &path).map(|(sha, _)| sha);
            match (&existing, body["sha"].as_str()) {
                (Some(_), None) => {
                    return Some(validation(
                        "Invalid request.\n\n\"sha\" wasn't supplied.",
                        "missing_field",
                    ));
                }
                (Some(current), Some(given)) if current != given => {
                    return Some(error(409, &format!("{path} does not match {given}")));
                }
                (None, Some(given)) => {
                    return Some(error(409, &format!("{path} does not match {given}")));
                }
                _ => {}
            }
            let commit =
                w.commit_files(&key, &branch, &[(path.clone(), Some(bytes.clone()))], message);
            let blob = sha_of(&bytes);
            let mut a = example("PUT /repos/{owner}/{repo}/contents/{path}");
            a["content"]["name"] = path.rsplit('/').next().unwrap().into();
            a["content"]["path"] = path.into();
            a["content"]["sha"] = blob.into();
            a["content"]["size"] = bytes.len().into();
            a["commit"]["sha"] = commit.into();
            a["commit"]["message"] = message.into();
            answer(if existing.is_some() { 200 } else { 201 }, a)
        }
        ("GET", ["repos", _, _, "rules", "branches", branch @ ..]) => {
            let branch = branch.join("/");
            let template = first("GET /repos/{owner}/{repo}/rules/branches/{branch}");
            let rules: Vec<Value> = w.repos[&repo_key(segs)]
                .rules
                .get(&branch)
                .into_iter()
                .flatten()
                .map(|kind| {
                    let mut r = template.clone();
                    r["type"] = kind.clone().into();
                    r.as_object_mut().unwrap().remove("parameters");
                    r
                })
                .collect();
            paged(rules, query)
        }
        ("GET", ["repos", _, _, "branches", branch @ ..]) => {
            let branch = branch.join("/");
            match w.repos[&repo_key(segs)].refs.get(&branch) {
                Some(sha) => {
                    let mut a = example("GET /repos/{owner}/{repo}/branches/{branch}");
                    a["name"] = branch.into();
                    a["commit"]["sha"] = sha.clone().into();
                    answer(200, a)
                }
                None => error(404, "Branch not found"),
            }
        }
        ("POST", ["repos", _, _, "git", "refs"]) => {
            let key = repo_key(segs);
            let (Some(full), Some(sha)) = (body["ref"].as_str(), body["sha"].as_str()) else {
                return Some(validation(
                    "Invalid request.\n\n\"ref\" and \"sha\" are required.",
                    "missing_field",
                ));
            };
            let Some(branch) = full.strip_prefix("refs/heads/") else {
                return Some(validation("Reference name must start with 'refs/'", "invalid"));
            };
            if !w.commits.contains_key(sha) {
                return Some(validation("Object does not exist", "invalid"));
            }
            if w.repos[&key].refs.contains_key(branch) {
                return Some(validation("Reference already exists", "already_exists"));
            }
            w.repos.get_mut(&key).unwrap().refs.insert(branch.into(), sha.into());
            let mut a = example("POST /repos/{owner}/{repo}/git/refs");
            a["ref"] = full.into();
            a["object"]["sha"] = sha.into();
            answer(201, a)
        }
        ("POST", ["repos", _, _, "git", "trees"]) => {
            let mut tree = body["base_tree"]
                .as_str()
                .and_then(|b| w.trees.get(b).cloned())
                .unwrap_or_default();
            for e in body["tree"].as_array().into_iter().flatten() {
                let (Some(path), Some(content)) = (e["path"].as_str(), e["content"].as_str())
                else {
                    return Some(validation("tree entries need a path and content", "invalid"));
                };
                let b = w.blob(content.as_bytes());
                tree.insert(path.into(), b);
            }
            let sha = sha_of(format!("tree {tree:?}").as_bytes());
            w.trees.insert(sha.clone(), tree);
            let mut a = example("POST /repos/{owner}/{repo}/git/trees");
            a["sha"] = sha.into();
            a["truncated"] = false.into();
            answer(201, a)
        }
        ("POST", ["repos", _, _, "git", "commits"]) => {
            let Some(tree) = body["tree"].as_str().and_then(|t| w.trees.get(t).cloned()) else {
                return Some(validation("Tree SHA does not exist", "invalid"));
            };
            let parents: Vec<String> = body["parents"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p.as_str().map(str::to_string))
                .collect();
            let message = body["message"].as_str().unwrap_or_default();
            let sha = w.commit(tree, parents.clone(), message);
            let mut a = example("POST /repos/{owner}/{repo}/git/commits");
            a["sha"] = sha.into();
            a["message"] = message.into();
            a["parents"] = parents.iter().map(|p| json!({ "sha": p, "url": "https://api.github.com", "html_url": "https://github.com" })).collect::<Vec<_>>().into();
            answer(201, a)
        }
        ("GET", ["repos", _, _, "git", "blobs", sha]) => match w.blobs.get(*sha) {
            Some(bytes) => {
                let mut a = example("GET /repos/{owner}/{repo}/git/blobs/{file_sha}");
                a["content"] = wrapped_b64(bytes).into();
                a["encoding"] = "base64".into();
                a["sha"] = (*sha).into();
                a["size"] = bytes.len().into();
                answer(200, a)
            }
            None => not_found(),
        },
        ("GET", ["repos", _, _, "commits"]) => {
            let key = repo_key(segs);
            let start =
                query.get("sha").cloned().unwrap_or_else(|| w.repos[&key].default_branch.clone());
            let Some(mut sha) = w.repos[&key]
                .refs
                .get(&start)
                .cloned()
                .or(Some(start))
                .filter(|s| w.commits.contains_key(s))
            else {
                return Some(not_found());
            };
            let per_page: usize = query.get("per_page").and_then(|p| p.parse().ok()).unwrap_or(30);
            let mut out = Vec::new();
            loop {
                let c = w.commits[&sha].clone();
                let parent = c.parents.first().cloned();
                let touched = match (query.get("path"), &parent) {
                    (Some(p), Some(parent)) => c.tree.get(p) != w.commits[parent].tree.get(p),
                    (Some(p), None) => c.tree.contains_key(p),
                    (None, _) => true,
                };
                if touched {
                    let mut v = first("GET /repos/{owner}/{repo}/commits");
                    v["sha"] = sha.clone().into();
                    v["commit"]["message"] = c.message.clone().into();
                    v["parents"] = c
                        .parents
                        .iter()
                        .map(|p| json!({ "sha": p, "url": "https://api.github.com" }))
                        .collect::<Vec<_>>()
                        .into();
                    out.push(v);
                }
                if out.len() >= per_page {
                    break;
                }
                match parent {
                    Some(p) => sha = p,
                    None => break,
                }
            }
            answer(200, Value::Array(out))
        }
        _ => return None,
    })
}
