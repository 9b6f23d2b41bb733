//! The one rule for names that become file names (hooks, Whisper models).

/// Whether `name` can name a hook or a model: 1 to 64 ASCII letters, digits, `-`, `_`, `.`, not
/// starting with `.`.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}
