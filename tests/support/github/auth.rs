//! The App, its installations and their tokens, and `GET /user`.

use super::*;

/// The routes of this resource; `None` for a request that is not one of them.
pub(super) fn route(w: &mut World, request: &Request) -> Option<Answer> {
    let Request { method, segs, actor, .. } = *request;
    let not_found = || error(404, "Not Found");
    Some(match (method.as_str(), segs) {
        ("GET", ["app"]) => {
            let mut a = example("GET /app");
            a["id"] = APP_ID.into();
            a["slug"] = APP_SLUG.into();
            a["name"] = "rotagate test".into();
            answer(200, a)
        }
        ("GET", ["user"]) => match actor {
            Actor::User(login) => {
                let mut u = example("GET /user");
                u["login"] = login.as_str().into();
                u["id"] = w.user_id(login).into();
                answer(200, u)
            }
            _ => error(403, "Resource not accessible by integration"),
        },
        ("GET", ["orgs" | "users", owner, "installation"]) => match w.installations.get(*owner) {
            Some((id, _)) => {
                let mut a = example(if segs[0] == "orgs" {
                    "GET /orgs/{org}/installation"
                } else {
                    "GET /users/{username}/installation"
                });
                a["id"] = (*id).into();
                a["app_id"] = APP_ID.into();
                a["app_slug"] = APP_SLUG.into();
                a["account"]["login"] = (*owner).into();
                answer(200, a)
            }
            None => not_found(),
        },
        ("POST", ["app", "installations", id, "access_tokens"]) => {
            let Some(owner) = w
                .installations
                .iter()
                .find(|(_, (i, _))| i.to_string() == *id)
                .map(|(o, _)| o.clone())
            else {
                return Some(not_found());
            };
            let token = format!("ghs_{}", sha_of(format!("{owner}{}", w.next_id).as_bytes()));
            w.next_id += 1;
            w.tokens.insert(token.clone(), Actor::Installation { owner });
            let mut a = example("POST /app/installations/{installation_id}/access_tokens");
            a["token"] = token.into();
            a["expires_at"] = (time::OffsetDateTime::now_utc() + time::Duration::hours(1))
                .replace_nanosecond(0)
                .unwrap()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap()
                .into();
            answer(201, a)
        }
        _ => return None,
    })
}
