//! Who may be dialled: `calls.dial_allow`, glob patterns over the `extension` exactly as a request
//! gives it. Without patterns only internal extensions of 2 to 6 digits are dialled: no `+`, no
//! longer numbers, no SIP URIs (a line to the PBX's trunks is a toll-fraud target).

/// The key named in refusals.
pub const DIAL_ALLOW_KEY: &str = "calls.dial_allow";

/// Characters that change the structure of a SIP address; a wildcard never stands for one of them,
/// so `sip:*@127.0.0.1:*` cannot be stretched over `sip:x@evil.example;p=@127.0.0.1:5`.
fn is_structural(c: char) -> bool {
    c.is_whitespace() || "@;?,<>\"".contains(c)
}

/// One glob: `*` is any run and `?` any one character, neither of them structural; everything
/// else matches itself, ASCII case-insensitively (SIP schemes and hosts are case-insensitive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob(Vec<char>);

impl Glob {
    pub fn new(pattern: &str) -> Self {
        Self(pattern.chars().collect())
    }

    pub fn matches(&self, text: &str) -> bool {
        let text: Vec<char> = text.chars().collect();
        let (p, t) = (&self.0, &text);
        // Iterative wildcard matching with one backtrack point (the last `*`).
        let (mut pi, mut ti) = (0usize, 0usize);
        let mut star: Option<(usize, usize)> = None;
        while ti < t.len() {
            match p.get(pi) {
                Some('*') => {
                    star = Some((pi, ti));
                    pi += 1;
                }
                Some('?') if !is_structural(t[ti]) => {
                    pi += 1;
                    ti += 1;
                }
                Some(c) if *c != '?' && c.eq_ignore_ascii_case(&t[ti]) => {
                    pi += 1;
                    ti += 1;
                }
                _ => match star {
                    // The last `*` takes one more character, if that character may be wild.
                    Some((sp, st)) if !is_structural(t[st]) => {
                        star = Some((sp, st + 1));
                        pi = sp + 1;
                        ti = st + 1;
                    }
                    _ => return false,
                },
            }
        }
        p[pi..].iter().all(|c| *c == '*')
    }
}

/// The dial policy of `calls.dial_allow`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialPolicy {
    /// `None`: the built-in rule (2-6 digits).
    patterns: Option<Vec<Glob>>,
}

impl DialPolicy {
    /// `patterns` as configured; `None` (the key unset) is the built-in rule.
    pub fn new(patterns: Option<&[String]>) -> Self {
        Self {
            patterns: patterns.map(|ps| ps.iter().map(|p| Glob::new(p.trim())).collect()),
        }
    }

    /// Whether `extension`, exactly as requested, may be dialled.
    pub fn allows(&self, extension: &str) -> bool {
        match &self.patterns {
            None => (2..=6).contains(&extension.len()) && extension.bytes().all(|b| b.is_ascii_digit()),
            Some(globs) => globs.iter().any(|g| g.matches(extension)),
        }
    }

    /// The refusal text for a 403.
    pub fn refusal(&self, extension: &str) -> String {
        match self.patterns {
            None => format!(
                "extension '{extension}' is not allowed: without {DIAL_ALLOW_KEY} only extensions of 2 to 6 digits are dialled"
            ),
            Some(_) => format!("extension '{extension}' matches no pattern of {DIAL_ALLOW_KEY}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(p: &[&str]) -> DialPolicy {
        let owned: Vec<String> = p.iter().map(|s| s.to_string()).collect();
        DialPolicy::new(Some(&owned))
    }

    #[test]
    fn the_default_dials_only_short_internal_extensions() {
        let d = DialPolicy::new(None);
        for ok in ["10", "1001", "123456"] {
            assert!(d.allows(ok), "{ok}");
        }
        for no in [
            "1",
            "1234567",
            "+1001",
            "00442071234567",
            "sip:1001@127.0.0.1",
            "10 01",
            "100-1",
            "",
            "*97",
        ] {
            assert!(!d.allows(no), "{no}");
        }
        assert!(d.refusal("+1").contains("calls.dial_allow"));
    }

    #[test]
    fn globs_match_whole_extensions() {
        let d = policy(&["sip:*@127.0.0.1:*", "1???"]);
        assert!(d.allows("sip:1001@127.0.0.1:5060"));
        assert!(d.allows("SIP:1001@127.0.0.1:5060"));
        assert!(d.allows("1234"));
        assert!(!d.allows("12345"));
        assert!(!d.allows("123"));
        assert!(!d.allows("2345"));
        assert!(!d.allows("sip:1001@127.0.0.2:5060"));
        assert!(!d.allows("sip:1001@127.0.0.1"));
        assert!(d.refusal("9").contains("matches no pattern of calls.dial_allow"));
    }

    #[test]
    fn wildcards_never_cross_the_structure_of_an_address() {
        let d = policy(&["sip:*@127.0.0.1:*"]);
        assert!(!d.allows("sip:x@evil.example;p=@127.0.0.1:5"));
        assert!(!d.allows("sip:x@evil.example?h=@127.0.0.1:5"));
        assert!(!d.allows("sip:a@127.0.0.1:5;maddr=evil.example"));
        assert!(!d.allows("sip:a b@127.0.0.1:5"));
        let any = policy(&["*"]);
        assert!(any.allows("+4930123456"));
        assert!(
            !any.allows("sip:1@h;transport=tcp"),
            "a parameter needs a pattern that names it"
        );
        assert!(policy(&["sip:*@h;transport=tcp"]).allows("sip:1@h;transport=tcp"));
    }

    #[test]
    fn stars_backtrack() {
        let g = Glob::new("a*b*c");
        assert!(g.matches("abc"));
        assert!(g.matches("axxbyyc"));
        assert!(g.matches("abbbc"));
        assert!(!g.matches("abcx"));
        assert!(!g.matches("acb"));
        assert!(Glob::new("**").matches(""));
        assert!(!Glob::new("?").matches(""));
    }
}
