//! Model allowlists: exact names and explicit wildcards, matched segment-safely. One crate for
//! the filter, which enforces the lists of the policy snapshot, and the control plane, which
//! checks that a key's list stays inside its team's, so the two can never disagree.
//!
//! An entry is an exact model name, `*` (every model), or a prefix followed by `*`. A prefix
//! that ends in a segment separator (`-`, `.`, `:`, `/`, `_`, `@`) matches any longer name
//! that starts with it; a prefix without one only matches where a new segment starts:
//! `qwen2.5-*` and `qwen2.5*` both allow `qwen2.5-7b` and `qwen2.5:7b`, neither allows
//! `qwen2.5x` nor `qwen2.5` itself. A `*` anywhere else is refused (and matches nothing).
//! Surrounding whitespace is ignored. An empty list allows nothing.

/// Characters that end a segment of a model name (`llama3.1:8b`, `org/model`).
pub const SEGMENT_SEPARATORS: [char; 6] = ['-', '.', ':', '/', '_', '@'];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelPattern<'a> {
    /// `*`
    Any,
    /// `<prefix>*`
    Prefix(&'a str),
    Exact(&'a str),
}

impl<'a> ModelPattern<'a> {
    /// `None` when the entry places a `*` anywhere but at its end, or is empty.
    pub fn parse(entry: &'a str) -> Option<Self> {
        let entry = entry.trim();
        match entry.strip_suffix('*') {
            Some("") => Some(Self::Any),
            Some(prefix) if !prefix.contains('*') => Some(Self::Prefix(prefix)),
            Some(_) => None,
            None if entry.is_empty() || entry.contains('*') => None,
            None => Some(Self::Exact(entry)),
        }
    }

    pub fn matches(self, model: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Prefix(prefix) => model
                .strip_prefix(prefix)
                .is_some_and(|rest| continues_segment_safely(prefix, rest)),
            Self::Exact(name) => model == name,
        }
    }

    /// Whether every model `other` allows is also allowed by `self`.
    pub fn covers(self, other: ModelPattern<'_>) -> bool {
        match (self, other) {
            (Self::Any, _) => true,
            (_, ModelPattern::Any) => false,
            (_, ModelPattern::Exact(name)) => self.matches(name),
            (Self::Exact(_), ModelPattern::Prefix(_)) => false,
            // Every name `narrow*` allows starts with `narrow` and goes on (after a separator
            // when `narrow` has none), so it suffices that `narrow` itself continues `wide`
            // safely, or equals it.
            (Self::Prefix(wide), ModelPattern::Prefix(narrow)) => narrow
                .strip_prefix(wide)
                .is_some_and(|rest| rest.is_empty() || continues_segment_safely(wide, rest)),
        }
    }
}

/// `prefix` + `rest` is a longer name that starts a new segment after `prefix`.
fn continues_segment_safely(prefix: &str, rest: &str) -> bool {
    !rest.is_empty()
        && (prefix.ends_with(SEGMENT_SEPARATORS) || rest.starts_with(SEGMENT_SEPARATORS))
}

/// Whether `model` is allowed by any entry of `allowlist`.
pub fn allows(allowlist: &[String], model: &str) -> bool {
    allowlist
        .iter()
        .filter_map(|e| ModelPattern::parse(e))
        .any(|p| p.matches(model))
}

/// The first entry of `narrower` that `wider` does not cover entirely, if any.
pub fn first_not_covered<'a>(narrower: &'a [String], wider: &[String]) -> Option<&'a str> {
    let wide: Vec<ModelPattern<'_>> = wider
        .iter()
        .filter_map(|e| ModelPattern::parse(e))
        .collect();
    narrower
        .iter()
        .map(String::as_str)
        .find(|entry| ModelPattern::parse(entry).is_none_or(|p| !wide.iter().any(|w| w.covers(p))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> Vec<String> {
        entries.iter().map(|e| (*e).to_owned()).collect()
    }

    #[test]
    fn wildcards_only_where_written_explicitly() {
        assert_eq!(ModelPattern::parse("*"), Some(ModelPattern::Any));
        assert_eq!(
            ModelPattern::parse("qwen2.5-*"),
            Some(ModelPattern::Prefix("qwen2.5-"))
        );
        assert_eq!(
            ModelPattern::parse("qwen2.5*"),
            Some(ModelPattern::Prefix("qwen2.5"))
        );
        assert_eq!(
            ModelPattern::parse("llama3"),
            Some(ModelPattern::Exact("llama3"))
        );
        for bad in ["", "*-7b", "q*wen-*", "**", "a-**", "*a"] {
            assert_eq!(ModelPattern::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn wildcards_match_whole_segments_only() {
        let cases = [
            ("qwen2.5-*", "qwen2.5-7b", true),
            ("qwen2.5-*", "qwen2.5-7b-instruct", true),
            ("qwen2.5-*", "qwen2.5x", false),
            ("qwen2.5-*", "qwen2.5", false),
            ("qwen2.5-*", "qwen2.5-", false),
            ("qwen2.5-*", "qwen2.6-7b", false),
            ("qwen2.5*", "qwen2.5-7b", true),
            ("qwen2.5*", "qwen2.5:7b", true),
            ("qwen2.5*", "qwen2.55", false),
            ("qwen2.5*", "qwen2.5x", false),
            ("qwen2.5*", "qwen2.5", false),
            ("llama3.1:*", "llama3.1:8b", true),
            ("org/*", "org/model", true),
            ("org/*", "organisation/model", false),
            ("*", "anything-at-all", true),
            ("*", "", true),
            (" * ", "x", true),
            ("llama3.1-8b", "llama3.1-8b", true),
            ("llama3.1-8b", "llama3.1-8b-instruct", false),
            ("llama3.1-8b", "LLAMA3.1-8B", false),
            ("q*n", "qwen", false),
            ("q*n", "q*n", false),
            ("**", "x", false),
            ("", "", false),
        ];
        for (entry, model, expected) in cases {
            assert_eq!(
                allows(&[entry.to_owned()], model),
                expected,
                "{entry:?} vs {model:?}"
            );
        }
    }

    #[test]
    fn prefix_wildcards_are_segment_safe() {
        for pattern in ["qwen2.5-*", "qwen2.5*"] {
            let p = ModelPattern::parse(pattern).unwrap();
            assert!(p.matches("qwen2.5-7b"), "{pattern}");
            assert!(p.matches("qwen2.5-coder:7b"), "{pattern}");
            assert!(!p.matches("qwen2.5x"), "{pattern}");
            assert!(!p.matches("qwen2.5"), "{pattern}");
            assert!(!p.matches("xqwen2.5-7b"), "{pattern}");
        }
        let bare = ModelPattern::parse("qwen2.5*").unwrap();
        assert!(bare.matches("qwen2.5:7b") && bare.matches("qwen2.5/x"));
        let dashed = ModelPattern::parse("qwen2.5-*").unwrap();
        assert!(!dashed.matches("qwen2.5:7b"));
        assert!(!dashed.matches("qwen2.5-"));
        assert!(ModelPattern::Any.matches("anything"));
    }

    #[test]
    fn allowlists_match_any_entry_and_empty_allows_nothing() {
        let l = list(&["llama3", "qwen2.5-*"]);
        assert!(allows(&l, "llama3"));
        assert!(allows(&l, "qwen2.5-14b"));
        assert!(!allows(&l, "llama3.1"));
        assert!(!allows(&[], "llama3"));
        assert!(allows(&list(&["*"]), "llama3"));
    }

    #[test]
    fn coverage_between_patterns() {
        let p = |s| ModelPattern::parse(s).unwrap();
        let any = ModelPattern::Any;
        assert!(any.covers(any) && any.covers(p("qwen2.5-*")) && any.covers(p("x")));
        assert!(!p("qwen2.5-*").covers(any));
        let holds = [
            ("qwen2.5-*", "qwen2.5-*"),
            ("qwen2.5-*", "qwen2.5-coder-*"),
            ("qwen2.5-*", "qwen2.5-coder*"),
            ("qwen2.5-*", "qwen2.5-7b"),
            ("qwen2.5*", "qwen2.5*"),
            ("qwen2.5*", "qwen2.5-*"),
            ("qwen2.5*", "qwen2.5:*"),
            ("qwen2.5*", "qwen2.5-coder*"),
            ("qwen*", "qwen-2*"),
            ("qwen2*", "qwen2.5*"),
            ("x", "x"),
        ];
        for (wide, narrow) in holds {
            assert!(p(wide).covers(p(narrow)), "{wide} covers {narrow}");
        }
        let fails = [
            ("qwen2.5-*", "qwen2.5*"),
            ("qwen2.5-*", "qwen2.5:*"),
            ("qwen2.5*", "qwen2.5x*"),
            ("qwen2*", "qwen25*"),
            ("qwen2.5-coder-*", "qwen2.5-*"),
            ("qwen2.5-7b", "qwen2.5-*"),
            ("qwen2.5-*", "qwen2.5-"),
            ("qwen2.5-*", "qwen2.5x"),
            ("x", "y"),
        ];
        for (wide, narrow) in fails {
            assert!(!p(wide).covers(p(narrow)), "{wide} must not cover {narrow}");
        }
    }

    /// Coverage agrees with matching: whatever the narrower pattern matches among sample
    /// names, the wider one matches too.
    #[test]
    fn coverage_is_consistent_with_matching() {
        let patterns = [
            "*",
            "qwen*",
            "qwen2*",
            "qwen2.5*",
            "qwen2.5-*",
            "qwen2.5:*",
            "qwen2.5-coder-*",
            "qwen2.5-coder*",
            "qwen2.5-7b",
            "qwen2.5",
            "llama3",
        ];
        let names = [
            "qwen",
            "qwen-1",
            "qwen2",
            "qwen2.5",
            "qwen2.5-",
            "qwen2.5-7b",
            "qwen2.5:7b",
            "qwen2.5x",
            "qwen2.5-coder",
            "qwen2.5-coder-7b",
            "qwen2.5-coder:7b",
            "qwen2.5-coderx",
            "qwen2.5/7b",
            "llama3",
            "llama3-8b",
        ];
        for wide in patterns {
            for narrow in patterns {
                let (w, n) = (
                    ModelPattern::parse(wide).unwrap(),
                    ModelPattern::parse(narrow).unwrap(),
                );
                if w.covers(n) {
                    for name in names {
                        assert!(
                            !n.matches(name) || w.matches(name),
                            "{wide} covers {narrow} but {name} disagrees"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn subsets_report_the_first_entry_outside() {
        let team = list(&["llama3", "qwen2.5-*"]);
        assert_eq!(first_not_covered(&list(&["llama3"]), &team), None);
        assert_eq!(
            first_not_covered(&list(&["qwen2.5-7b", "qwen2.5-coder-*"]), &team),
            None
        );
        assert_eq!(first_not_covered(&[], &team), None);
        assert_eq!(
            first_not_covered(&list(&["llama3", "qwen2.5x"]), &team),
            Some("qwen2.5x")
        );
        assert_eq!(first_not_covered(&list(&["*"]), &team), Some("*"));
        assert_eq!(
            first_not_covered(&list(&["qwen2.*"]), &team),
            Some("qwen2.*")
        );
        assert_eq!(first_not_covered(&list(&["llama3"]), &[]), Some("llama3"));
        assert_eq!(first_not_covered(&list(&["anything"]), &list(&["*"])), None);
        assert_eq!(first_not_covered(&list(&["*"]), &list(&["*"])), None);
    }
}
