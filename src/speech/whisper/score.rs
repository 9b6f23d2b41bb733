//! The option scorer: Whisper's decoder forced through each option phrase, weighed against the
//! model's own free transcript, so a short answer is recognised as one of a few known phrases or
//! as "something else" by likelihood margins rather than by a transcript alone.
//!
//! Every hypothesis (each phrase as Whisper writes text, " Yes." or " Not now.", and the free
//! transcript) is a token sequence ended by end-of-text. They share prefixes, so they are scored
//! in one walk over a prefix tree ([`Trie`]): each tree node is one decoder step of one token, and
//! the decoder's key/value cache is rewound to the node's depth before each step, so siblings reuse
//! their parent's work. The same walk on encoded silence gives each hypothesis's prior (how likely
//! the model writes it with no speech at all): the difference is the evidence the audio gives it,
//! which keeps short phrases ("No.") from winning on noise (the debiasing of zero-shot
//! classification with Whisper, Ma et al. 2024). [`decide`] turns the scores into a pick.
//!
//! This file is sans-IO: the model sits behind [`Stepper`], so the walk and the rule are tested
//! with a table of log-probabilities.

use std::collections::HashMap;

/// A Whisper token id.
pub type Token = i32;

/// Runs the decoder one token at a time.
pub trait Stepper {
    type Error;
    /// Decode `token` at position `pos` (forgetting every position from `pos` on) and return the
    /// log-probabilities of each token of `next` as the following token.
    fn step(&mut self, token: Token, pos: usize, next: &[Token]) -> Result<Vec<f32>, Self::Error>;
}

#[derive(Debug, Default)]
struct Node {
    children: Vec<(Token, usize)>,
    /// Hypotheses that end here (followed by end-of-text).
    ends: Vec<usize>,
}

/// The hypotheses as a prefix tree.
#[derive(Debug)]
pub struct Trie {
    nodes: Vec<Node>,
    count: usize,
}

impl Trie {
    /// The tree of `hypotheses` (token sequences without prefix or end-of-text).
    pub fn new(hypotheses: &[Vec<Token>]) -> Self {
        let mut nodes = vec![Node::default()];
        for (h, tokens) in hypotheses.iter().enumerate() {
            let mut at = 0;
            for &t in tokens {
                let next = nodes[at].children.iter().find(|(c, _)| *c == t).map(|&(_, n)| n);
                at = match next {
                    Some(n) => n,
                    None => {
                        nodes.push(Node::default());
                        let n = nodes.len() - 1;
                        nodes[at].children.push((t, n));
                        n
                    }
                };
            }
            nodes[at].ends.push(h);
        }
        Self {
            nodes,
            count: hypotheses.len(),
        }
    }

    /// Decoder steps one walk takes (one per node below the root).
    pub fn steps(&self) -> usize {
        self.nodes.len() - 1
    }

    fn wanted(&self, node: usize, eot: Token) -> Vec<Token> {
        let n = &self.nodes[node];
        let mut w: Vec<Token> = n.children.iter().map(|&(t, _)| t).collect();
        if !n.ends.is_empty() {
            w.push(eot);
        }
        w
    }

    /// Score every hypothesis: the sum of its tokens' log-probabilities and end-of-text's, after
    /// `prefix` (decoded first, from position 0). Depth-first, so the decoder's cache always holds
    /// exactly the path to the current node. Also returns the log-probabilities of `after_first`
    /// as the token after the prefix's first (Whisper's no-speech token follows start-of-transcript).
    pub fn score<S: Stepper>(
        &self,
        stepper: &mut S,
        prefix: &[Token],
        eot: Token,
        after_first: &[Token],
    ) -> Result<(Vec<f32>, Vec<f32>), S::Error> {
        let mut scores = vec![f32::NEG_INFINITY; self.count];
        let Some((&last, head)) = prefix.split_last() else {
            return Ok((scores, Vec::new()));
        };
        let mut first = Vec::new();
        for (pos, &t) in head.iter().enumerate() {
            let want: &[Token] = if pos == 0 { after_first } else { &[] };
            let lp = stepper.step(t, pos, want)?;
            if pos == 0 {
                first = lp;
            }
        }
        let lp = stepper.step(last, head.len(), &self.wanted(0, eot))?;
        self.walk(stepper, 0, prefix.len(), 0.0, lp, eot, &mut scores)?;
        Ok((scores, first))
    }

    #[allow(clippy::too_many_arguments)]
    fn walk<S: Stepper>(
        &self,
        stepper: &mut S,
        node: usize,
        pos: usize,
        base: f32,
        lp: Vec<f32>,
        eot: Token,
        scores: &mut [f32],
    ) -> Result<(), S::Error> {
        let wanted = self.wanted(node, eot);
        let of = |tok: Token| -> f32 {
            wanted
                .iter()
                .position(|&w| w == tok)
                .and_then(|i| lp.get(i).copied())
                .unwrap_or(f32::NEG_INFINITY)
        };
        let n = &self.nodes[node];
        for &h in &n.ends {
            scores[h] = base + of(eot);
        }
        for &(t, child) in &n.children {
            let child_base = base + of(t);
            let child_lp = stepper.step(t, pos, &self.wanted(child, eot))?;
            self.walk(stepper, child, pos + 1, child_base, child_lp, eot, scores)?;
        }
        Ok(())
    }
}

/// How Whisper would write a phrase as a whole reply: a leading space, a capital first letter and
/// a full stop (" Yes.", " Not now."); a phrase that already ends in punctuation keeps it.
pub fn written(phrase: &str) -> String {
    let p = phrase.trim();
    let mut chars = p.chars();
    let mut out = String::with_capacity(p.len() + 2);
    out.push(' ');
    if let Some(first) = chars.next() {
        out.extend(first.to_uppercase());
        out.push_str(chars.as_str());
    }
    if !p.ends_with(['.', '?', '!']) {
        out.push('.');
    }
    out
}

/// The thresholds of [`decide`] (log-probability units, natural log).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rule {
    /// How far a phrase may score below the free transcript and still be taken (the free
    /// transcript is the model's best guess; a garbled synonym scores a little below it, an
    /// off-topic reply far below).
    pub max_behind_free: f32,
    /// Least evidence (score on the audio minus score on silence) a pick needs.
    pub min_evidence: f32,
    /// Least evidence the free transcript needs for the utterance to count as speech at all.
    pub min_speech_evidence: f32,
    /// Least lead of the best phrase over the best phrase of any other option.
    pub min_separation: f32,
    /// How far the free transcript with a phrase in place of its closest stretch may score below
    /// the free transcript and still be taken (a misheard word inside a longer reply).
    pub max_behind_in_context: f32,
    /// Most probability of the no-speech token before the first word for the utterance to count
    /// as speech (line noise and hiss score 0.78 and more, speech mostly below 0.6).
    pub max_no_speech: f32,
}

/// Chosen on the tuning half of the dev set by `tests/support/tune_scorer.py` (figures in
/// docs/recognition.md).
pub const RULE: Rule = Rule {
    max_behind_free: 14.0,
    min_evidence: 3.0,
    min_speech_evidence: -2.0,
    min_separation: 0.0,
    max_behind_in_context: 2.0,
    max_no_speech: 0.75,
};

/// One scored phrase.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PhraseScore {
    /// Index into the caller's phrase list.
    pub phrase: usize,
    pub option: usize,
    /// Log-probability on the audio.
    pub score: f32,
    /// Log-probability on silence.
    pub prior: f32,
    /// Log-probability on the audio of the free transcript with the phrase in place of its
    /// closest stretch ([`in_context`]); `None` when that is the bare phrase.
    pub in_context: Option<f32>,
}

/// Everything [`decide`] weighs.
#[derive(Debug, Clone, PartialEq)]
pub struct Scores {
    /// The free transcript's log-probability on the audio and on silence.
    pub free: f32,
    pub free_prior: f32,
    /// The probability of the no-speech token at the start of the transcript.
    pub no_speech: f32,
    /// The phrases weighed: none when the free transcript already holds one (the matcher then
    /// judges it), else the few closest to it in spelling ([`closest`]).
    pub phrases: Vec<PhraseScore>,
}

/// What the scorer concluded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Conclusion {
    /// The audio holds no speech worth a decision (noise, a click, a breath).
    NotSpeech,
    /// Speech, but no phrase passes the margins.
    SomethingElse,
    /// `phrase` (an index into the caller's list) with a confidence in 0..=1.
    Pick {
        phrase: usize,
        option: usize,
        confidence: f32,
    },
}

/// Decide by margins: speech at all (the free transcript's evidence), the best phrase close enough
/// to the free transcript, with evidence of its own, and ahead of every other option. The
/// confidence is the best phrase's share of probability among itself, the best other option and
/// the free transcript (when that is a different text).
pub fn decide(s: &Scores, rule: &Rule) -> Conclusion {
    let speech = s.free - s.free_prior;
    if speech.is_nan() || speech < rule.min_speech_evidence || s.no_speech > rule.max_no_speech {
        return Conclusion::NotSpeech;
    }
    let Some(best) = s
        .phrases
        .iter()
        .filter(|p| p.score.is_finite())
        .max_by(|a, b| a.score.total_cmp(&b.score))
    else {
        return Conclusion::SomethingElse;
    };
    let rival = s
        .phrases
        .iter()
        .filter(|p| p.option != best.option && p.score.is_finite())
        .map(|p| p.score)
        .fold(f32::NEG_INFINITY, f32::max);
    let behind = s.free - best.score;
    let evidence = best.score - best.prior;
    if behind <= rule.max_behind_free
        && evidence >= rule.min_evidence
        && best.score - rival >= rule.min_separation
    {
        // The free transcript competes unless it is the phrase itself (then it scores the same).
        let free = if behind.abs() < 1e-4 {
            f32::NEG_INFINITY
        } else {
            s.free
        };
        return Conclusion::Pick {
            phrase: best.phrase,
            option: best.option,
            confidence: share(best.score, &[rival, free]),
        };
    }
    // A misheard word inside a longer reply: the transcript with the phrase in its place.
    let in_ctx = |p: &&PhraseScore| p.in_context.filter(|x| x.is_finite());
    let Some(best) = s.phrases.iter().filter(|p| in_ctx(p).is_some()).max_by(|a, b| {
        in_ctx(a)
            .unwrap_or(f32::NEG_INFINITY)
            .total_cmp(&in_ctx(b).unwrap_or(f32::NEG_INFINITY))
    }) else {
        return Conclusion::SomethingElse;
    };
    let score = in_ctx(&best).unwrap_or(f32::NEG_INFINITY);
    let rival = s
        .phrases
        .iter()
        .filter(|p| p.option != best.option)
        .filter_map(|p| in_ctx(&p))
        .fold(f32::NEG_INFINITY, f32::max);
    if s.free - score > rule.max_behind_in_context || score - rival < rule.min_separation {
        return Conclusion::SomethingElse;
    }
    Conclusion::Pick {
        phrase: best.phrase,
        option: best.option,
        confidence: share(score, &[rival, s.free]),
    }
}

/// `score`'s share of probability among itself and `others` (log-probabilities).
fn share(score: f32, others: &[f32]) -> f32 {
    let top = others.iter().copied().fold(score, f32::max);
    let sum: f32 = std::iter::once(score)
        .chain(others.iter().copied())
        .map(|x| (x - top).exp())
        .sum();
    ((score - top).exp() / sum).clamp(0.0, 1.0)
}

/// Words of `text` folded for comparison: lower-case letters and digits.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric() && c != '\'')
        .map(|w| {
            w.chars()
                .filter(|c| c.is_alphanumeric())
                .flat_map(char::to_lowercase)
                .collect::<String>()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// Whether `transcript` holds `phrase` as whole words (or with the spaces removed on both sides:
/// "never mind" = "nevermind"), as the answer matcher finds phrases.
pub fn holds(transcript: &str, phrase: &str) -> bool {
    let t = words(transcript);
    let p = words(phrase);
    if p.is_empty() {
        return false;
    }
    if t.windows(p.len()).any(|w| w == p.as_slice()) {
        return true;
    }
    let joined = p.concat();
    (1..=t.len()).any(|n| t.windows(n).any(|w| w.concat() == joined))
}

/// A crude sound skeleton of a folded word: consonants only, soft and hard `c` told apart,
/// doubled letters once ("cells" and "sales" are both "sls").
fn skeleton(word: &str) -> String {
    let c: Vec<char> = word.chars().collect();
    let mut out = String::new();
    for (i, &ch) in c.iter().enumerate() {
        let next = c.get(i + 1).copied();
        let sound = match ch {
            'a' | 'e' | 'i' | 'o' | 'u' | 'y' | 'h' | 'w' => None,
            'c' if matches!(next, Some('e' | 'i' | 'y')) => Some('s'),
            'c' | 'q' => Some('k'),
            'z' => Some('s'),
            'p' if next == Some('h') => Some('f'),
            other => Some(other),
        };
        if let Some(s) = sound {
            if !out.ends_with(s) {
                out.push(s);
            }
        }
    }
    out
}

/// How alike two folded strings are, 0..=1: letter pairs and sound skeletons, half each.
fn similarity(a: &str, b: &str) -> f32 {
    0.5 * dice(a, b) + 0.5 * dice(&skeleton(a), &skeleton(b))
}

/// Letter-pair similarity (Dice) of two strings, 0..=1.
fn dice(a: &str, b: &str) -> f32 {
    let pairs = |s: &str| -> Vec<(char, char)> {
        let c: Vec<char> = s.chars().collect();
        c.windows(2).map(|w| (w[0], w[1])).collect()
    };
    let (pa, mut pb) = (pairs(a), pairs(b));
    if pa.is_empty() || pb.is_empty() {
        return if a == b { 1.0 } else { 0.0 };
    }
    let total = pa.len() + pb.len();
    let mut shared = 0;
    for p in pa {
        if let Some(i) = pb.iter().position(|q| *q == p) {
            pb.swap_remove(i);
            shared += 1;
        }
    }
    2.0 * shared as f32 / total as f32
}

/// How close `phrase` is in spelling to some stretch of `transcript` of about its length.
fn closeness(transcript: &[String], phrase: &str) -> f32 {
    let p = words(phrase);
    let target = p.concat();
    let n = p.len().max(1);
    let mut best = similarity(&transcript.concat(), &target) * 0.5;
    for len in n.saturating_sub(1).max(1)..=n + 1 {
        for w in transcript.windows(len.min(transcript.len()).max(1)) {
            best = best.max(similarity(&w.concat(), &target));
        }
    }
    best
}

/// `transcript` with the stretch of words closest in spelling to `phrase` replaced by it, as
/// Whisper writes text (leading space, the transcript's own case and punctuation around it): the
/// hypothesis that the caller said the phrase inside a longer reply and the model misheard it
/// ("I'd like Tuesdee please" -> "I'd like Tuesday please"). `None` when the transcript is no
/// longer than the stretch (the bare phrase says the same).
pub fn in_context(transcript: &str, phrase: &str) -> Option<String> {
    let raw: Vec<&str> = transcript.split_whitespace().collect();
    let folded: Vec<String> = raw.iter().map(|w| words(w).concat()).collect();
    let target = words(phrase).concat();
    let n = words(phrase).len().max(1);
    if raw.len() <= n || target.is_empty() {
        return None;
    }
    let mut best: Option<(f32, usize, usize)> = None;
    for len in n.saturating_sub(1).max(1)..=(n + 1).min(raw.len() - 1) {
        for start in 0..=raw.len() - len {
            let sim = similarity(&folded[start..start + len].concat(), &target);
            if best.is_none_or(|(b, _, _)| sim > b) {
                best = Some((sim, start, len));
            }
        }
    }
    let (_, start, len) = best?;
    let last = raw[start + len - 1];
    let tail: String = last
        .chars()
        .rev()
        .take_while(|c| !c.is_alphanumeric())
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let mut said = phrase.trim().to_string();
    if start == 0 {
        let mut c = said.chars();
        if let Some(f) = c.next() {
            said = f.to_uppercase().chain(c).collect();
        }
    }
    let mut out: Vec<String> = raw[..start].iter().map(|w| w.to_string()).collect();
    out.push(format!("{said}{tail}"));
    out.extend(raw[start + len..].iter().map(|w| w.to_string()));
    Some(format!(" {}", out.join(" ")))
}

/// Most phrases weighed for one reply (each costs a few decoder steps).
pub const MAX_WEIGHED: usize = 6;

/// The phrases worth weighing against `transcript`: the closest in spelling of each option, then
/// the closest others, at most [`MAX_WEIGHED`]. `phrases` are (option, text); returns indexes.
pub fn closest(transcript: &str, phrases: &[(usize, String)]) -> Vec<usize> {
    let t = words(transcript);
    let mut ranked: Vec<(f32, usize)> = phrases
        .iter()
        .enumerate()
        .map(|(i, (_, p))| (closeness(&t, p), i))
        .collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut out: Vec<usize> = Vec::new();
    for &(_, i) in &ranked {
        if !out.iter().any(|&j| phrases[j].0 == phrases[i].0) {
            out.push(i);
        }
    }
    out.truncate(MAX_WEIGHED);
    for &(_, i) in &ranked {
        if out.len() >= MAX_WEIGHED {
            break;
        }
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out.sort_unstable();
    out
}

/// Priors of hypotheses on silence, by encoder context and tokens, kept between calls (a question
/// is usually asked many times with the same options). Bounded: cleared when full.
#[derive(Debug, Default)]
pub struct PriorCache {
    map: HashMap<(usize, Vec<Token>), f32>,
}

/// Most priors kept.
const MAX_PRIORS: usize = 4096;

impl PriorCache {
    pub fn get(&self, audio_ctx: usize, tokens: &[Token]) -> Option<f32> {
        self.map.get(&(audio_ctx, tokens.to_vec())).copied()
    }

    pub fn put(&mut self, audio_ctx: usize, tokens: Vec<Token>, prior: f32) {
        if self.map.len() >= MAX_PRIORS {
            self.map.clear();
        }
        self.map.insert((audio_ctx, tokens), prior);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A decoder whose next-token log-probability is a function of the path so far; it checks the
    /// positions it is given follow the path (the cache contract).
    struct Table {
        path: Vec<Token>,
        steps: usize,
        lp: fn(&[Token], Token) -> f32,
    }

    impl Stepper for Table {
        type Error = String;
        fn step(&mut self, token: Token, pos: usize, next: &[Token]) -> Result<Vec<f32>, String> {
            if pos > self.path.len() {
                return Err(format!("position {pos} skips ahead of the path {:?}", self.path));
            }
            self.path.truncate(pos);
            self.path.push(token);
            self.steps += 1;
            Ok(next.iter().map(|&t| (self.lp)(&self.path, t)).collect())
        }
    }

    const EOT: Token = 99;

    fn table(lp: fn(&[Token], Token) -> f32) -> Table {
        Table {
            path: Vec::new(),
            steps: 0,
            lp,
        }
    }

    #[test]
    fn each_hypothesis_scores_the_sum_along_its_path_and_shared_prefixes_decode_once() {
        // log-prob of t after a path = -(t as f32) / 10, except end-of-text: -1 after [.., 2], else -5.
        let lp = |path: &[Token], t: Token| -> f32 {
            if t == EOT {
                if path.last() == Some(&2) {
                    -1.0
                } else {
                    -5.0
                }
            } else {
                -(t as f32) / 10.0
            }
        };
        let hyps = vec![vec![1, 2], vec![1, 3], vec![1, 2, 4], vec![5]];
        let trie = Trie::new(&hyps);
        assert_eq!(trie.steps(), 5, "1, 2, 3, 4, 5: the shared prefix [1] once");
        let mut t = table(lp);
        let (s, first) = trie.score(&mut t, &[50, 51], EOT, &[3]).expect("score");
        assert_eq!(first, vec![-0.3], "asked after the prefix's first token");
        let want = [
            -0.1 - 0.2 - 1.0,
            -0.1 - 0.3 - 5.0,
            -0.1 - 0.2 - 0.4 - 5.0,
            -0.5 - 5.0,
        ];
        for (got, want) in s.iter().zip(want) {
            assert!((got - want).abs() < 1e-5, "{s:?}");
        }
        assert_eq!(t.steps, 2 + 5, "prefix plus one step per node");
    }

    #[test]
    fn the_walk_rewinds_to_each_nodes_depth() {
        // A decoder that makes the path visible: a hypothesis scores 0 only if the decoder's
        // path is exactly prefix + its tokens when end-of-text is asked.
        let lp = |path: &[Token], t: Token| -> f32 {
            if t == EOT {
                match path {
                    [7, 8, 1, 2] | [7, 8, 1, 3] | [7, 8, 4] => 0.0,
                    _ => -100.0,
                }
            } else {
                0.0
            }
        };
        let trie = Trie::new(&[vec![1, 2], vec![1, 3], vec![4]]);
        let (s, _) = trie.score(&mut table(lp), &[7, 8], EOT, &[]).expect("score");
        assert_eq!(s, vec![0.0, 0.0, 0.0]);
    }

    #[test]
    fn written_form_is_whispers() {
        assert_eq!(written("yes"), " Yes.");
        assert_eq!(written(" not now "), " Not now.");
        assert_eq!(written("really?"), " Really?");
        assert_eq!(written(""), " .");
    }

    #[test]
    fn a_phrase_takes_the_place_of_its_closest_stretch() {
        assert_eq!(
            in_context("I'd like Tuesdee please.", "tuesday").as_deref(),
            Some(" I'd like tuesday please.")
        );
        assert_eq!(
            in_context("Cells, please.", "sales").as_deref(),
            Some(" Sales, please.")
        );
        assert_eq!(in_context("Monday.", "monday"), None, "no longer than the phrase");
        assert_eq!(in_context("", "x"), None);
    }

    #[test]
    fn a_transcript_holding_a_phrase_is_left_to_the_matcher() {
        assert!(holds("Yes, please.", "yes"));
        assert!(holds("I'd like billing please", "billing"));
        assert!(holds("nevermind", "never mind"));
        assert!(holds("never mind.", "nevermind"));
        assert!(!holds("yesterday", "yes"));
        assert!(!holds("direct", "correct"));
        assert!(!holds("anything", ""));
    }

    #[test]
    fn the_closest_phrases_of_every_option_are_weighed() {
        let p = |o: usize, t: &str| (o, t.to_string());
        let phrases = vec![
            p(0, "yes"),
            p(0, "correct"),
            p(0, "okay"),
            p(0, "sure"),
            p(1, "no"),
            p(1, "stop"),
            p(1, "cancel"),
            p(1, "never mind"),
            p(2, "later"),
        ];
        let picked = closest("direct", &phrases);
        assert!(picked.len() <= MAX_WEIGHED);
        assert!(picked.contains(&1), "correct is closest to direct: {picked:?}");
        for option in 0..3 {
            assert!(
                picked.iter().any(|&i| phrases[i].0 == option),
                "option {option}: {picked:?}"
            );
        }
        assert!(closest("start", &phrases).contains(&5), "stop");
        assert_eq!(closest("x", &[]), Vec::<usize>::new());
    }

    fn phrase(phrase: usize, option: usize, score: f32, prior: f32) -> PhraseScore {
        PhraseScore {
            phrase,
            option,
            score,
            prior,
            in_context: None,
        }
    }

    #[test]
    fn a_phrase_close_to_the_free_transcript_with_evidence_is_picked() {
        let s = Scores {
            free: -3.0,
            free_prior: -20.0,
            no_speech: 0.0,
            phrases: vec![phrase(0, 0, -4.0, -15.0), phrase(1, 1, -12.0, -14.0)],
        };
        match decide(&s, &RULE) {
            Conclusion::Pick {
                phrase,
                option,
                confidence,
            } => {
                assert_eq!((phrase, option), (0, 0));
                assert!(
                    confidence > 0.2 && confidence < 0.3,
                    "free transcript competes: {confidence}"
                );
            }
            other => panic!("{other:?}"),
        }
        // The free transcript is the phrase itself: only the rival competes.
        let same = Scores {
            free: -4.0,
            ..s.clone()
        };
        assert!(matches!(decide(&same, &RULE), Conclusion::Pick { confidence, .. } if confidence > 0.99));
    }

    #[test]
    fn off_topic_and_noise_are_not_picked_and_close_rivals_are_unsure() {
        let far_behind = Scores {
            free: -5.0,
            free_prior: -30.0,
            no_speech: 0.0,
            phrases: vec![phrase(0, 0, -25.0, -40.0)],
        };
        assert_eq!(decide(&far_behind, &RULE), Conclusion::SomethingElse);
        let noise = Scores {
            free: -3.0,
            free_prior: -0.5,
            no_speech: 0.0,
            phrases: vec![phrase(0, 0, -3.0, -0.5)],
        };
        assert_eq!(decide(&noise, &RULE), Conclusion::NotSpeech);
        let hiss = Scores {
            free: -3.0,
            free_prior: -20.0,
            no_speech: 0.85,
            phrases: vec![phrase(0, 0, -3.0, -20.0)],
        };
        assert_eq!(decide(&hiss, &RULE), Conclusion::NotSpeech);
        let no_evidence = Scores {
            free: -3.0,
            free_prior: -30.0,
            no_speech: 0.0,
            phrases: vec![phrase(0, 0, -3.5, -3.0)],
        };
        assert_eq!(decide(&no_evidence, &RULE), Conclusion::SomethingElse);
        let rivals = Scores {
            free: -3.0,
            free_prior: -30.0,
            no_speech: 0.0,
            phrases: vec![phrase(0, 0, -3.5, -20.0), phrase(1, 1, -3.9, -20.0)],
        };
        // Close rivals: picked, but with a confidence low enough for the call to ask it back
        // (`script.confirm_below`, 0.6).
        assert!(
            matches!(decide(&rivals, &RULE), Conclusion::Pick { option: 0, confidence, .. } if confidence < 0.6),
            "{:?}",
            decide(&rivals, &RULE)
        );
        let nothing = Scores {
            free: f32::NAN,
            free_prior: 0.0,
            no_speech: 0.0,
            phrases: vec![],
        };
        assert_eq!(decide(&nothing, &RULE), Conclusion::NotSpeech);
    }

    #[test]
    fn the_prior_cache_is_bounded() {
        let mut c = PriorCache::default();
        for i in 0..(MAX_PRIORS as i32 + 10) {
            c.put(256, vec![i], -1.0);
        }
        assert!(c.map.len() <= MAX_PRIORS);
        assert_eq!(c.get(256, &[MAX_PRIORS as i32 + 9]), Some(-1.0));
        assert_eq!(c.get(320, &[MAX_PRIORS as i32 + 9]), None);
    }
}
