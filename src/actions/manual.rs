//! `manual`: a checklist line for a person. It is never executed: the gate that guards
//! its stage carries it (in the pull request, in the run's output).

use super::{ActionKind, Built};
use crate::config::Template;
use crate::config::validate::steps::template;
use crate::config::validate::{Role, Scope, Slot, Validator};
use crate::step::Providers;

pub struct Manual;

impl ActionKind<Template> for Manual {
    const ROLES: &'static [Role] = &[Role::Publish, Role::Promote, Role::Retire];

    fn check(text: &Template, v: &mut Validator, scope: &Scope, path: &str, _role: Role) {
        template(v, scope, path, text, Slot::Manual);
    }

    fn build(_: &Template, _: &Providers) -> Built {
        Ok(None)
    }
}
