//! What a test does to the fake: repositories, installations, reviews, merges, faults.

use super::*;

impl FakeGitHub {
    pub async fn start() -> FakeGitHub {
        let key = rotagate::material::rsa::generate(2048).unwrap();
        let world = World { app_key_public: key.public_pem.clone(), ..Default::default() };
        let world = Arc::new(Mutex::new(world));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let (w, f) = (world.clone(), in_flight.clone());
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let (w, f) = (w.clone(), f.clone());
                async move { handle(w, f, method, uri, headers, body).await }
            },
        );
        let addr = crate::support::server::serve(app).await;
        FakeGitHub { addr, world, in_flight, app_key_pem: key.private_pem.expose().to_string() }
    }

    /// A client of this fake as the test GitHub App, with quick retries.
    pub fn client(&self, limits: Option<rotagate::github::Limits>) -> rotagate::github::GitHub {
        self.client_with(limits, 16)
    }

    /// A client with `concurrency` requests in flight for bulk writes.
    pub fn client_with(
        &self,
        limits: Option<rotagate::github::Limits>,
        concurrency: usize,
    ) -> rotagate::github::GitHub {
        rotagate::github::GitHub::new(
            rotagate::github::Credentials::App {
                id: APP_ID,
                key: rotagate::secret::Secret::new(self.app_key_pem.clone()),
            },
            rotagate::github::Options {
                api: self.url(),
                limits,
                concurrency,
                retry: rotagate::http::RetryPolicy {
                    attempts: 6,
                    min_delay: Duration::from_millis(50),
                    max_delay: Duration::from_secs(2),
                    max_server_wait: Duration::from_secs(5),
                },
            },
        )
        .unwrap()
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn w(&self) -> std::sync::MutexGuard<'_, World> {
        self.world.lock().unwrap()
    }

    pub fn add_repo(&self, full: &str) {
        let mut w = self.w();
        let id = w.id() + 100_000;
        let readme = w.blob(b"# repository\n");
        let tree: BTreeMap<String, String> = [("README.md".to_string(), readme)].into();
        let root = w.commit(tree, vec![], "initial commit");
        let (owner, name) = full.split_once('/').unwrap();
        w.repos.insert(
            full.to_string(),
            Repo {
                id,
                owner: owner.into(),
                name: name.into(),
                default_branch: "main".into(),
                values: Values { keys: KeyPair::new(&format!("repo-{id}")), ..Default::default() },
                environments: BTreeMap::new(),
                refs: [("main".to_string(), root)].into(),
                pulls: Vec::new(),
                issues: Vec::new(),
                labels: BTreeSet::new(),
                collaborators: BTreeMap::new(),
                runs: BTreeMap::new(),
                workflow_outcome: BTreeMap::new(),
                accept_input: BTreeMap::new(),
                rules: BTreeMap::new(),
            },
        );
    }

    pub fn add_org(&self, org: &str) {
        self.w().orgs.insert(
            org.to_string(),
            Values { keys: KeyPair::new(&format!("org-{org}")), ..Default::default() },
        );
    }

    pub fn add_environment(&self, repo: &str, env: &str) {
        let mut w = self.w();
        w.values_mut(&Scope::Env(repo.into(), env.into())).unwrap();
    }

    /// Installs the App on `owner` with every permission.
    pub fn install(&self, owner: &str) -> u64 {
        let mut w = self.w();
        let id = w.id() + 5_000;
        w.installations
            .insert(owner.to_string(), (id, PERMISSIONS.iter().map(|p| p.to_string()).collect()));
        id
    }

    pub fn revoke(&self, owner: &str, permission: &str) {
        self.w().installations.get_mut(owner).unwrap().1.remove(permission);
    }

    /// A personal access token acting as `login`.
    pub fn user_token(&self, login: &str) -> String {
        let mut w = self.w();
        let t = format!("ghp_{}", sha_of(login.as_bytes()));
        w.users.insert(login.to_string());
        w.tokens.insert(t.clone(), Actor::User(login.to_string()));
        t
    }

    /// An installation token for `owner` (as the App would get one).
    pub fn installation_token(&self, owner: &str) -> String {
        let mut w = self.w();
        let t = format!("ghs_{}", sha_of(format!("installation {owner}").as_bytes()));
        w.tokens.insert(t.clone(), Actor::Installation { owner: owner.to_string() });
        t
    }

    /// The workflow's GITHUB_TOKEN for `repo`.
    pub fn workflow_token(&self, repo: &str) -> String {
        let mut w = self.w();
        let t = format!("ghs_workflow_{}", sha_of(repo.as_bytes()));
        w.tokens.insert(t.clone(), Actor::Workflow { repo: repo.to_string() });
        t
    }

    pub fn set_permission(&self, repo: &str, login: &str, permission: &str) {
        self.w().repos.get_mut(repo).unwrap().collaborators.insert(login.into(), permission.into());
    }

    pub fn add_team_member(&self, org: &str, team: &str, login: &str) {
        self.w().teams.entry(format!("{org}/{team}")).or_default().insert(login.into());
    }

    pub fn inject(&self, endpoint: &str, fault: Fault, times: usize) {
        self.w().faults.push((endpoint.to_string(), fault, times));
    }

    pub fn set_latency(&self, latency: Duration) {
        self.w().latency = latency;
    }

    pub fn enforce_limits(&self, limits: Option<SimLimits>) {
        self.w().limits = limits;
    }

    pub fn limit_responses(&self) -> usize {
        self.w().limited
    }

    pub fn counts(&self) -> BTreeMap<String, usize> {
        self.w().counts.clone()
    }

    pub fn count(&self, endpoint: &str) -> usize {
        self.w().counts.get(endpoint).copied().unwrap_or(0)
    }

    pub fn total_requests(&self) -> usize {
        self.w().counts.values().sum()
    }

    pub fn reset_counts(&self) {
        let mut w = self.w();
        w.counts.clear();
        w.limited = 0;
    }

    /// A secret as sealed and stored, opened with the key the test keeps.
    pub fn secret(&self, repo: &str, name: &str) -> Option<String> {
        let w = self.w();
        let v = &w.repos.get(repo)?.values;
        v.secrets.get(name).map(|(sealed, _)| v.keys.open(sealed))
    }

    pub fn env_secret(&self, repo: &str, env: &str, name: &str) -> Option<String> {
        let w = self.w();
        let v = w.repos.get(repo)?.environments.get(env)?;
        v.secrets.get(name).map(|(sealed, _)| v.keys.open(sealed))
    }

    pub fn org_secret(&self, org: &str, name: &str) -> Option<(String, Value)> {
        let w = self.w();
        let v = w.orgs.get(org)?;
        v.secrets.get(name).map(|(sealed, _)| {
            (v.keys.open(sealed), v.org_settings.get(name).cloned().unwrap_or(Value::Null))
        })
    }

    /// The raw sealed value and the repository's public key (for an independent check).
    pub fn sealed(&self, repo: &str, name: &str) -> Option<(String, String, String)> {
        let w = self.w();
        let v = &w.repos.get(repo)?.values;
        let secret_key = STANDARD.encode(v.keys.secret.as_ref()?.to_bytes());
        v.secrets.get(name).map(|(sealed, _)| (sealed.clone(), v.keys.public_b64(), secret_key))
    }

    pub fn variable(&self, repo: &str, name: &str) -> Option<String> {
        self.w().repos.get(repo)?.values.variables.get(name).cloned()
    }

    pub fn set_variable(&self, repo: &str, name: &str, value: &str) {
        self.w().repos.get_mut(repo).unwrap().values.variables.insert(name.into(), value.into());
    }

    pub fn file(&self, repo: &str, branch: &str, path: &str) -> Option<String> {
        self.w().file(repo, branch, path).map(|(_, b)| String::from_utf8(b).unwrap())
    }

    /// Every path on `branch`.
    pub fn files(&self, repo: &str, branch: &str) -> Vec<String> {
        self.w()
            .tree_at(repo, branch)
            .map(|(_, tree)| tree.keys().cloned().collect())
            .unwrap_or_default()
    }

    pub fn branch_head(&self, repo: &str, branch: &str) -> Option<String> {
        self.w().repos.get(repo)?.refs.get(branch).cloned()
    }

    /// Commits a file directly (someone pushing).
    pub fn push_file(&self, repo: &str, branch: &str, path: &str, content: &str) -> String {
        self.w().commit_files(
            repo,
            branch,
            &[(path.into(), Some(content.as_bytes().to_vec()))],
            "a push",
        )
    }

    pub fn create_branch(&self, repo: &str, branch: &str, from: &str) {
        let mut w = self.w();
        let sha = w.repos[repo].refs[from].clone();
        w.repos.get_mut(repo).unwrap().refs.insert(branch.into(), sha);
    }

    pub fn pulls(&self, repo: &str) -> Vec<Pull> {
        self.w().repos[repo].pulls.clone()
    }

    pub fn pull(&self, repo: &str, number: u64) -> Pull {
        self.w().repos[repo].pulls.iter().find(|p| p.number == number).unwrap().clone()
    }

    fn with_pull<T>(&self, repo: &str, number: u64, f: impl FnOnce(&mut World, usize) -> T) -> T {
        let mut w = self.w();
        let i = w.repos[repo].pulls.iter().position(|p| p.number == number).unwrap();
        f(&mut w, i)
    }

    pub fn review(&self, repo: &str, number: u64, login: &str, state: &str) -> u64 {
        self.with_pull(repo, number, |w, i| {
            let id = w.id();
            let head = w.repos[repo].pulls[i].head.clone();
            let commit = w.repos[repo].refs[&head].clone();
            w.repos.get_mut(repo).unwrap().pulls[i].reviews.push(Review {
                id,
                user: login.into(),
                state: state.into(),
                commit_id: commit,
                submitted_at: now(),
            });
            id
        })
    }

    pub fn approve(&self, repo: &str, number: u64, login: &str) -> u64 {
        self.review(repo, number, login, "APPROVED")
    }

    pub fn dismiss(&self, repo: &str, number: u64, review: u64) {
        self.with_pull(repo, number, |w, i| {
            for r in w.repos.get_mut(repo).unwrap().pulls[i]
                .reviews
                .iter_mut()
                .filter(|r| r.id == review)
            {
                r.state = "DISMISSED".into();
            }
        })
    }

    /// A new commit on the pull request's branch.
    pub fn push_to_pull(&self, repo: &str, number: u64, path: &str, content: &str) {
        self.with_pull(repo, number, |w, i| {
            let head = w.repos[repo].pulls[i].head.clone();
            w.commit_files(
                repo,
                &head,
                &[(path.into(), Some(content.as_bytes().to_vec()))],
                "a push to the pull request",
            );
        })
    }

    pub fn change_base(&self, repo: &str, number: u64, base: &str) {
        self.with_pull(repo, number, |w, i| {
            w.repos.get_mut(repo).unwrap().pulls[i].base = base.into()
        });
    }

    /// Merges as `merger`: the pull request's changes land on its base branch.
    pub fn merge(&self, repo: &str, number: u64, merger: &str) {
        self.with_pull(repo, number, |w, i| {
            let pull = w.repos[repo].pulls[i].clone();
            let changes: Vec<(String, Option<Vec<u8>>)> = w
                .pull_files(repo, &pull)
                .into_iter()
                .map(|(path, status)| {
                    let content =
                        (status != "removed").then(|| w.file(repo, &pull.head, &path).unwrap().1);
                    (path, content)
                })
                .collect();
            let sha = w.commit_files(
                repo,
                &pull.base,
                &changes,
                &format!("Merge pull request #{number}"),
            );
            let p = &mut w.repos.get_mut(repo).unwrap().pulls[i];
            p.state = "closed".into();
            p.merged_by = Some(merger.into());
            p.merged_at = Some(now());
            p.merge_sha = Some(sha);
        })
    }

    pub fn close(&self, repo: &str, number: u64) {
        self.with_pull(repo, number, |w, i| {
            w.repos.get_mut(repo).unwrap().pulls[i].state = "closed".into()
        });
    }

    /// A ruleset protecting `branch` with rules of these types (`non_fast_forward`,
    /// `deletion`), as Settings → Rules → Rulesets makes.
    pub fn protect_branch(&self, repo: &str, branch: &str, rules: &[&str]) {
        self.w()
            .repos
            .get_mut(repo)
            .unwrap()
            .rules
            .insert(branch.into(), rules.iter().map(|r| r.to_string()).collect());
    }

    /// Moves `branch` to `sha` whatever it held (`git push --force`).
    pub fn force_push(&self, repo: &str, branch: &str, sha: &str) {
        self.w().repos.get_mut(repo).unwrap().refs.insert(branch.into(), sha.into());
    }

    /// A closed pull request opened again, as anyone with write access can on GitHub.
    pub fn reopen(&self, repo: &str, number: u64) {
        self.with_pull(repo, number, |w, i| {
            w.repos.get_mut(repo).unwrap().pulls[i].state = "open".into()
        });
    }

    /// Someone else opens a pull request from `head` (created with `files`).
    pub fn open_pull_as(&self, login: &str, repo: &str, head: &str, files: &[(&str, &str)]) -> u64 {
        let mut w = self.w();
        let default = w.repos[repo].default_branch.clone();
        let base_sha = w.repos[repo].refs[&default].clone();
        w.repos.get_mut(repo).unwrap().refs.insert(head.into(), base_sha.clone());
        let changes: Vec<(String, Option<Vec<u8>>)> =
            files.iter().map(|(p, c)| (p.to_string(), Some(c.as_bytes().to_vec()))).collect();
        w.commit_files(repo, head, &changes, "someone's change");
        let number = w.id();
        w.repos.get_mut(repo).unwrap().pulls.push(Pull {
            number,
            user: login.into(),
            title: "a pull request".into(),
            body: String::new(),
            head: head.into(),
            base: default,
            base_sha,
            state: "open".into(),
            merged_by: None,
            merged_at: None,
            merge_sha: None,
            reviews: Vec::new(),
        });
        number
    }

    pub fn issues(&self, repo: &str) -> Vec<Issue> {
        self.w().repos[repo].issues.clone()
    }

    pub fn set_workflow_outcome(
        &self,
        repo: &str,
        workflow: &str,
        status: &str,
        conclusion: Option<&str>,
    ) {
        self.w()
            .repos
            .get_mut(repo)
            .unwrap()
            .workflow_outcome
            .insert(workflow.into(), (status.into(), conclusion.map(str::to_string)));
    }

    /// Runs of `workflow` fail unless their input `input` is `value`.
    pub fn accept_only_input(&self, repo: &str, workflow: &str, input: &str, value: &str) {
        self.w()
            .repos
            .get_mut(repo)
            .unwrap()
            .accept_input
            .insert(workflow.into(), (input.into(), value.into()));
    }

    /// Lifts [`FakeGitHub::accept_only_input`].
    pub fn accept_any_input(&self, repo: &str, workflow: &str) {
        self.w().repos.get_mut(repo).unwrap().accept_input.remove(workflow);
    }

    /// Moves every run of `workflow` to `status`/`conclusion`.
    pub fn finish_runs(&self, repo: &str, workflow: &str, conclusion: &str) {
        let mut w = self.w();
        for run in w.repos.get_mut(repo).unwrap().runs.entry(workflow.into()).or_default() {
            run.status = "completed".into();
            run.conclusion = Some(conclusion.into());
        }
    }

    pub fn runs(&self, repo: &str, workflow: &str) -> Vec<Run> {
        self.w().repos[repo].runs.get(workflow).cloned().unwrap_or_default()
    }
}
