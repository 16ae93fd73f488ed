//! Compiled redaction policies. Compiling one costs milliseconds (detector automata, the name
//! lexicon), so each worker compiles a team's policy once and shares it across requests and
//! snapshot versions, keyed by the policy's JSON text.

use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use modelgate_proto::v1::TeamPolicy;
use modelgate_redact::{Phase, Redactor, Scope};

/// Distinct policies kept per worker; past this the cache starts over (policies are per team,
/// so only a deployment with this many differently-configured teams ever gets there).
const MAX_POLICIES: usize = 1024;

/// One worker's compiled policies.
#[derive(Debug, Default)]
pub struct RedactorCache {
    /// `None`: the policy does not compile (logged once), so its team fails closed.
    compiled: RefCell<HashMap<String, Option<Rc<Redactor>>>>,
    /// The default policy (every built-in type masked), for the prompt kept in audit records.
    record_masker: OnceCell<Option<Rc<Redactor>>>,
}

/// A team's policy does not compile here: its requests are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyUnusable;

impl RedactorCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// The redaction settings of `team`. An empty `redaction_policy_json` means no redaction.
    pub fn team(&self, team: &TeamPolicy) -> Result<TeamRedaction, PolicyUnusable> {
        let json = team.redaction_policy_json.trim();
        let redactor = if json.is_empty() {
            None
        } else {
            Some(self.compile(&team.team_id, json).ok_or(PolicyUnusable)?)
        };
        let high_trust = team.high_trust || redactor.as_ref().is_some_and(|r| r.bypasses());
        Ok(TeamRedaction {
            redactor,
            high_trust,
            record_masker: if team.keep_redacted_prompt {
                self.record_masker()
            } else {
                None
            },
        })
    }

    fn compile(&self, team_id: &str, json: &str) -> Option<Rc<Redactor>> {
        if let Some(found) = self.compiled.borrow().get(json) {
            return found.clone();
        }
        let compiled = match Redactor::from_json(json) {
            Ok(redactor) => Some(Rc::new(redactor)),
            Err(err) => {
                log::error!(
                    "team {team_id}: redaction policy unusable ({err}); its requests are refused"
                );
                None
            }
        };
        let mut cache = self.compiled.borrow_mut();
        if cache.len() >= MAX_POLICIES {
            cache.clear();
        }
        cache.insert(json.to_owned(), compiled.clone());
        compiled
    }

    fn record_masker(&self) -> Option<Rc<Redactor>> {
        self.record_masker
            .get_or_init(|| match Redactor::from_json("") {
                Ok(redactor) => Some(Rc::new(redactor)),
                Err(err) => {
                    log::error!("default redaction policy unusable ({err}); no prompt is kept");
                    None
                }
            })
            .clone()
    }
}

/// What a team's policy asks of one request.
#[derive(Debug, Clone, Default)]
pub struct TeamRedaction {
    redactor: Option<Rc<Redactor>>,
    /// The team (or its policy) bypasses redaction; its requests are marked so.
    high_trust: bool,
    /// Set when the team keeps redacted prompts in its audit records.
    record_masker: Option<Rc<Redactor>>,
}

impl TeamRedaction {
    pub fn bypassed(&self) -> bool {
        self.high_trust
    }

    /// The policy in force for `phase`, if it looks for anything there.
    pub fn redactor(&self, phase: Phase) -> Option<&Rc<Redactor>> {
        self.redactor
            .as_ref()
            .filter(|r| !self.high_trust && r.active(phase))
    }

    /// The scope of the team's policy, when one applies (not for high-trust teams).
    pub fn scope(&self) -> Option<Scope> {
        self.redactor
            .as_ref()
            .filter(|_| !self.high_trust)
            .map(|r| r.scope())
    }

    pub fn redacts_requests(&self) -> bool {
        self.redactor(Phase::Request).is_some()
    }

    pub fn record_masker(&self) -> Option<&Redactor> {
        self.record_masker.as_deref()
    }
}
