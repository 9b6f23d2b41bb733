//! Idioms that hold an answer word without giving that answer (English): `no` as a determiner in
//! `no idea`, `no clue`, `no problem`, `no worries`, `no doubt`, `no one`, ... is not the answer
//! `no` ("I have no idea" is no answer; "no problem" is not a refusal). A hit of a phrase that ends
//! in such a `no` (found as a whole phrase, not inside a longer synonym like `no problem` that an
//! option lists itself) does not count.

use super::normalize::Token;
use super::phrases::Hit;

/// Words after which a preceding `no` is a determiner, not an answer.
/// (Not `way`, `thanks`: "no way", "no thanks" are refusals.)
const AFTER_DETERMINER_NO: &[&str] = &[
    "idea", "clue", "problem", "problems", "worries", "worry", "doubt", "comment", "matter",
];

/// Whether `hit` ends in a `no` that the next word of its clause turns into a determiner.
pub fn is_idiom(tokens: &[Token], hit: &Hit) -> bool {
    let (Some(last), Some(next)) = (
        hit.end.checked_sub(1).and_then(|i| tokens.get(i)),
        tokens.get(hit.end),
    ) else {
        return false;
    };
    last.text == "no" && next.clause == last.clause && AFTER_DETERMINER_NO.contains(&next.text.as_str())
}
