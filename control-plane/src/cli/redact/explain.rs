//! `modelgate redact --policy FILE --explain`: the effective policy, every default filled in,
//! one rule per detector with what it does to prompts and to answers; and the policy format
//! as the `--help` of every flag that takes a policy file prints it.

use std::io::Write;

use modelgate_redact::{
    Action, Detection, Direction, EntityType, FieldKind, RedactionPolicy, Scope,
};
use serde::Serialize;

/// One complete policy per mode, printed by `--help` one per line; the README's "Redaction
/// policy" section shows the same policies (a test keeps them equal).
pub const EXAMPLES: [(&str, &str); 5] = [
    (
        "mask (the default): every built-in type becomes <TYPE> in prompts",
        r#"{"default_action": "mask", "direction": "request", "entities": {"IP_ADDRESS": "off"}, "scope": "full"}"#,
    ),
    (
        "reversible: the model sees <PERSON_1>, the client gets the name back; emails also masked in answers",
        r#"{"default_action": "mask", "entities": {"PERSON": "reversible", "EMAIL_ADDRESS": {"action": "reversible", "direction": "both"}}}"#,
    ),
    (
        "block: a prompt with a card number, an SSN or a code name is refused (400 pii_blocked)",
        r#"{"default_action": "mask", "entities": {"CREDIT_CARD": "block", "US_SSN": "block"}, "deny_terms": [{"name": "CODENAME", "terms": ["Bluebird", "Project Nightjar"], "action": "block"}]}"#,
    ),
    (
        "off: only the listed types, in message text only; answers masked for employee ids",
        r#"{"default_action": "off", "entities": {"EMAIL_ADDRESS": "mask", "US_SSN": "mask"}, "custom_patterns": [{"name": "EMPLOYEE_ID", "pattern": "\\bEMP-[0-9]{6}\\b", "action": "mask", "direction": "both"}], "scope": ["messages"]}"#,
    ),
    (
        "high trust: redaction bypassed, each request marked in the audit log",
        r#"{"high_trust": true}"#,
    ),
];

/// The policy format, for the long `--help` of `--policy` and `--redaction-policy`.
pub fn format_help() -> String {
    let mut help = String::from(
        "A JSON object; every field is optional and `{}` masks every built-in type in prompts.\n\
         \n\
         Fields (default in brackets):\n\
         \x20 default_action   off | mask | reversible | block, for built-in types not in `entities` [mask]\n\
         \x20 direction        request | response | both, for rules that name none [request]\n\
         \x20 entities         {TYPE: action} or {TYPE: {\"action\", \"direction\"}} [{}]; types:\n\
         \x20                  EMAIL_ADDRESS US_SSN US_ITIN CREDIT_CARD PHONE_NUMBER IBAN_CODE\n\
         \x20                  US_BANK_NUMBER IP_ADDRESS SECRET PERSON (US_ITIN follows US_SSN's rule\n\
         \x20                  unless listed)\n\
         \x20 custom_patterns  [{\"name\": \"TYPE\", \"pattern\": regex, \"action\" [mask], \"direction\"}] [[]],\n\
         \x20                  at most 32; name [A-Z][A-Z0-9_]{0,31}, not a built-in type\n\
         \x20 deny_terms       [{\"name\" [DENY_LIST], \"terms\": [..], \"action\" [mask], \"direction\",\n\
         \x20                  \"case_sensitive\" [false]}] [[]]: whole words, at most 10000 terms\n\
         \x20 high_trust       true bypasses redaction [false]\n\
         \x20 scope            \"full\", or one or a list of: messages tool_calls tools names other [full]\n\
         \n\
         Actions: off (not looked for), mask (<TYPE>), reversible (<TYPE_N>, restored in the\n\
         answer), block (the request is refused, 400 pii_blocked). In answers, rules whose\n\
         direction covers responses mask (block and reversible too).\n\
         \n\
         Examples, one per mode:\n",
    );
    for (mode, json) in EXAMPLES {
        help.push_str(&format!("  # {mode}\n  {json}\n"));
    }
    help.push_str(
        "\n`modelgate redact --policy FILE --explain` prints a policy with its defaults filled in.",
    );
    help
}

/// A policy with its defaults filled in.
#[derive(Debug, Serialize)]
pub struct Explanation {
    /// The file, or `(default)`.
    pub policy: String,
    pub high_trust: bool,
    pub default_action: Action,
    pub direction: Direction,
    /// `"full"` or the kinds.
    pub scope: Scope,
    /// The kinds of request text the scope covers.
    pub scope_kinds: Vec<&'static str>,
    pub rules: Vec<Rule>,
}

/// What one detector does under the policy.
#[derive(Debug, Serialize)]
pub struct Rule {
    pub entity: String,
    /// `built-in`, `custom_pattern` or `deny_terms`.
    pub detector: &'static str,
    /// Where the rule comes from: `entities`, `default_action`, `entities.US_SSN`,
    /// `custom_patterns[0]`, `deny_terms[0]`.
    pub from: String,
    pub action: Action,
    pub direction: Direction,
    /// What happens in prompts: off, mask, reversible or block.
    pub request: &'static str,
    /// What happens in answers: off, mask, restore (placeholders of the prompt come back) or
    /// restore and mask.
    pub response: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checks: Option<&'static str>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub cues: &'static [&'static str],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub negative_cues: &'static [&'static str],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub terms: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub case_sensitive: Option<bool>,
}

impl Rule {
    fn new(
        entity: String,
        detector: &'static str,
        from: String,
        rule: (Action, Direction),
    ) -> Self {
        let (action, direction) = rule;
        let request = match action {
            _ if !direction.covers(modelgate_redact::Phase::Request) => "off",
            Action::Off => "off",
            Action::Mask => "mask",
            Action::Reversible => "reversible",
            Action::Block => "block",
        };
        let masks_answers =
            action != Action::Off && direction.covers(modelgate_redact::Phase::Response);
        let response = match (request == "reversible", masks_answers) {
            (true, true) => "restore and mask",
            (true, false) => "restore",
            (false, true) => "mask",
            (false, false) => "off",
        };
        Rule {
            entity,
            detector,
            from,
            action,
            direction,
            request,
            response,
            checks: None,
            cues: &[],
            negative_cues: &[],
            pattern: None,
            terms: None,
            case_sensitive: None,
        }
    }
}

/// The effective policy; `policy` must already have compiled (`Redactor::new`).
pub fn explain(origin: &str, policy: &RedactionPolicy) -> Explanation {
    let mut rules: Vec<Rule> = EntityType::BUILTIN
        .iter()
        .map(|entity| {
            let from = if policy.entities.contains_key(entity.as_str()) {
                "entities".to_owned()
            } else if *entity == EntityType::UsItin
                && policy.entities.contains_key(EntityType::UsSsn.as_str())
            {
                "entities.US_SSN".to_owned()
            } else {
                "default_action".to_owned()
            };
            let mut rule = Rule::new(
                entity.as_str().to_owned(),
                "built-in",
                from,
                policy.builtin_rule(entity),
            );
            if let Some(detection) = Detection::of(entity) {
                rule.checks = Some(detection.checks);
                rule.cues = detection.cues;
                rule.negative_cues = detection.negative_cues;
            }
            rule
        })
        .collect();
    for (i, custom) in policy.custom_patterns.iter().enumerate() {
        let mut rule = Rule::new(
            custom.name.clone(),
            "custom_pattern",
            format!("custom_patterns[{i}]"),
            (custom.action, custom.direction.unwrap_or(policy.direction)),
        );
        rule.pattern = Some(custom.pattern.clone());
        rules.push(rule);
    }
    for (i, deny) in policy.deny_terms.iter().enumerate() {
        let mut rule = Rule::new(
            deny.name.clone(),
            "deny_terms",
            format!("deny_terms[{i}]"),
            (deny.action, deny.direction.unwrap_or(policy.direction)),
        );
        rule.terms = Some(deny.terms.len());
        rule.case_sensitive = Some(deny.case_sensitive);
        rules.push(rule);
    }
    Explanation {
        policy: origin.to_owned(),
        high_trust: policy.high_trust,
        default_action: policy.default_action,
        direction: policy.direction,
        scope: policy.scope,
        scope_kinds: FieldKind::ALL
            .into_iter()
            .filter(|kind| policy.scope.covers(*kind))
            .map(FieldKind::as_str)
            .collect(),
        rules,
    }
}

impl Explanation {
    pub fn write_text(&self, out: &mut impl Write) -> std::io::Result<()> {
        writeln!(out, "policy:         {}", self.policy)?;
        if self.high_trust {
            writeln!(
                out,
                "high_trust:     true: redaction is bypassed (each request marked in the audit log); the rules below do not run"
            )?;
        } else {
            writeln!(out, "high_trust:     false")?;
        }
        writeln!(out, "default_action: {}", name(&self.default_action))?;
        writeln!(out, "direction:      {}", name(&self.direction))?;
        writeln!(
            out,
            "scope:          {} ({})",
            self.scope.label(),
            self.scope_kinds.join(", ")
        )?;
        for rule in &self.rules {
            writeln!(out)?;
            writeln!(
                out,
                "{} ({}, from {})",
                rule.entity, rule.detector, rule.from
            )?;
            writeln!(
                out,
                "  action {}, direction {}: prompts {}, answers {}",
                name(&rule.action),
                name(&rule.direction),
                rule.request,
                rule.response
            )?;
            if let Some(checks) = rule.checks {
                writeln!(out, "  checks: {checks}")?;
            }
            if !rule.cues.is_empty() {
                writeln!(out, "  cues: {}", rule.cues.join(", "))?;
            }
            if !rule.negative_cues.is_empty() {
                writeln!(out, "  not after: {}", rule.negative_cues.join(", "))?;
            }
            if let Some(pattern) = &rule.pattern {
                writeln!(out, "  pattern: {pattern}")?;
            }
            if let (Some(terms), Some(case_sensitive)) = (rule.terms, rule.case_sensitive) {
                let case = if case_sensitive {
                    "case-sensitive"
                } else {
                    "case-insensitive"
                };
                writeln!(out, "  terms: {terms}, whole words, {case}")?;
            }
        }
        Ok(())
    }
}

/// The JSON name of an action or direction (`"mask"`, `"both"`).
fn name(value: &impl Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use modelgate_redact::Redactor;

    use super::*;

    #[test]
    fn every_example_is_a_policy_that_compiles() {
        for (mode, json) in EXAMPLES {
            Redactor::from_json(json).unwrap_or_else(|e| panic!("{mode}: {e}"));
            assert!(!json.contains('\n'), "one line per example: {mode}");
            assert!(format_help().contains(json), "{mode}");
        }
    }

    #[test]
    fn defaults_are_filled_in_and_itin_follows_ssn() {
        let policy = RedactionPolicy::from_json(
            r#"{"entities": {"US_SSN": "block", "EMAIL_ADDRESS": {"action": "reversible", "direction": "both"}}}"#,
        )
        .unwrap();
        let e = explain("p.json", &policy);
        let rule = |name: &str| e.rules.iter().find(|r| r.entity == name).unwrap();
        assert_eq!(e.scope_kinds.len(), FieldKind::ALL.len());
        assert_eq!(
            (rule("US_ITIN").from.as_str(), rule("US_ITIN").request),
            ("entities.US_SSN", "block")
        );
        assert_eq!(rule("EMAIL_ADDRESS").response, "restore and mask");
        assert_eq!(
            (
                rule("PERSON").from.as_str(),
                rule("PERSON").request,
                rule("PERSON").response
            ),
            ("default_action", "mask", "off")
        );
    }
}
