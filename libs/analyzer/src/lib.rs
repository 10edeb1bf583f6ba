//! What a call's conversation says, locally: no network, no model download. Speakers (labelled
//! or alternating), the customer's **intent** and **sentiment** from weighted cue phrases
//! (Chinese and English lexicons, the customer's later turns counting more), an A-F **grade**
//! from the intent, **keywords** (jieba-rs TF-IDF for Chinese, a tokenizer and stop words for
//! English; product, price, time and objection words rank high, fillers never), a one-to-three
//! sentence **summary**, and the **language**.
//!
//! Grades: A interested (wants the next step), B considering, C inconvenient (call again),
//! D not interested, E wrong number, F no conversation.

pub mod eval;
mod keywords;
pub mod nb;
pub mod rules;
mod summary;
pub mod turns;

use serde::Serialize;
pub use turns::{Speaker, Turn};

/// The customer's intent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Intent {
    Interested,
    Considering,
    Inconvenient,
    NotInterested,
    WrongNumber,
    NoConversation,
}

impl Intent {
    pub const ALL: [Intent; 6] = [
        Intent::Interested,
        Intent::Considering,
        Intent::Inconvenient,
        Intent::NotInterested,
        Intent::WrongNumber,
        Intent::NoConversation,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Intent::Interested => "interested",
            Intent::Considering => "considering",
            Intent::Inconvenient => "inconvenient",
            Intent::NotInterested => "not_interested",
            Intent::WrongNumber => "wrong_number",
            Intent::NoConversation => "no_conversation",
        }
    }

    pub fn parse(s: &str) -> Option<Intent> {
        Intent::ALL.into_iter().find(|i| i.name() == s)
    }

    /// A interested, B considering, C inconvenient, D not interested, E wrong number, F no
    /// conversation.
    pub fn grade(self) -> &'static str {
        match self {
            Intent::Interested => "A",
            Intent::Considering => "B",
            Intent::Inconvenient => "C",
            Intent::NotInterested => "D",
            Intent::WrongNumber => "E",
            Intent::NoConversation => "F",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Sentiment {
    Positive,
    Neutral,
    Negative,
}

impl Sentiment {
    pub fn name(self) -> &'static str {
        match self {
            Sentiment::Positive => "positive",
            Sentiment::Neutral => "neutral",
            Sentiment::Negative => "negative",
        }
    }

    pub fn parse(s: &str) -> Option<Sentiment> {
        [Sentiment::Positive, Sentiment::Neutral, Sentiment::Negative]
            .into_iter()
            .find(|x| x.name() == s)
    }
}

/// What a transcript says.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Analysis {
    pub intent: Intent,
    pub grade: &'static str,
    pub sentiment: Sentiment,
    pub keywords: Vec<String>,
    pub summary: String,
    /// "zh" or "en".
    pub language: &'static str,
    /// Turns by the agent and by the customer.
    pub agent_turns: usize,
    pub customer_turns: usize,
}

/// The analyzer: its dictionaries are loaded once (about a tenth of a second) and shared.
pub struct Analyzer {
    keywords: keywords::Keywords,
    lexicon: rules::Lexicon,
    model: nb::Model,
}

impl Default for Analyzer {
    fn default() -> Self {
        Analyzer::new()
    }
}

/// Longest transcript read (characters); the rest is ignored.
pub const MAX_CHARS: usize = 50_000;

impl Analyzer {
    pub fn new() -> Analyzer {
        Analyzer {
            keywords: keywords::Keywords::new(),
            lexicon: rules::Lexicon::load(),
            model: nb::Model::intents(),
        }
    }

    /// An analyzer whose intent model is `model` (cross-validation: a model trained on part of
    /// the tune split).
    pub fn with_model(model: nb::Model) -> Analyzer {
        Analyzer {
            keywords: keywords::Keywords::new(),
            lexicon: rules::Lexicon::load(),
            model,
        }
    }

    /// The rules' intent scores of a transcript (for tuning the lexicons; not part of the
    /// analysis).
    #[doc(hidden)]
    pub fn intent_scores(&self, transcript: &str) -> Vec<(Intent, f32)> {
        let turns = turns::turns(transcript);
        let spoken: Vec<&Turn> = turns
            .iter()
            .filter(|t| t.speaker == Speaker::Customer)
            .filter(|t| {
                !machine(&self.lexicon, &t.text)
                    && substantive(&self.lexicon, &spoken_part(&t.text))
            })
            .collect();
        let spoken: Vec<&&Turn> = spoken.iter().collect();
        let scores = rule_scores(&self.lexicon, &turns, &spoken);
        self.lexicon
            .intents
            .iter()
            .map(|(i, _)| *i)
            .zip(scores)
            .collect()
    }

    /// Analyses one transcript.
    pub fn analyze(&self, transcript: &str) -> Analysis {
        let transcript = match transcript.char_indices().nth(MAX_CHARS) {
            Some((i, _)) => &transcript[..i],
            None => transcript,
        };
        let turns = turns::turns(transcript);
        let language = language(transcript);
        let customer: Vec<&Turn> = turns
            .iter()
            .filter(|t| t.speaker == Speaker::Customer)
            .collect();
        let intent = intent(&self.lexicon, &self.model, transcript, &turns, &customer);
        let sentiment = sentiment(&self.lexicon, intent, &customer);
        let keywords = self.keywords.extract(&turns, language);
        let summary = summary::summary(intent, sentiment, &turns, language);
        Analysis {
            intent,
            grade: intent.grade(),
            sentiment,
            keywords,
            summary,
            language,
            agent_turns: turns.len() - customer.len(),
            customer_turns: customer.len(),
        }
    }
}

/// A Chinese (CJK unified) character.
pub(crate) fn is_han(c: char) -> bool {
    ('\u{4e00}'..='\u{9fff}').contains(&c)
}

/// "zh" when Chinese characters outnumber a fifth of the letters, else "en".
pub fn language(text: &str) -> &'static str {
    let (mut han, mut latin) = (0usize, 0usize);
    for c in text.chars() {
        if is_han(c) {
            han += 1;
        } else if c.is_ascii_alphabetic() {
            latin += 1;
        }
    }
    if han * 5 >= latin && han > 0 {
        "zh"
    } else {
        "en"
    }
}

/// Whether a customer turn says anything beyond greetings and fillers (a word or two cut off
/// by the line dropping, "喂，什——", "Hel—", is not).
fn substantive(lex: &rules::Lexicon, text: &str) -> bool {
    let cut = text.trim_end().trim_end_matches(['-', '—', ' ']);
    if cut.len() < text.trim_end().len() {
        let han = cut.chars().filter(|c| is_han(*c)).count();
        let words = cut.split_whitespace().count();
        if (han > 0 && han <= 3) || (han == 0 && words <= 1) {
            return false;
        }
    }
    let mut rest = text.to_lowercase();
    for f in lex.fillers.iter().filter(|f| !f.is_ascii()) {
        rest = rest.replace(f.as_str(), "");
    }
    rest.split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
        .any(|w| !lex.fillers.iter().any(|f| f == w))
}

/// Whether a turn is a machine's (a voicemail greeting, an IVR menu, a carrier message, a tone).
fn machine(lex: &rules::Lexicon, text: &str) -> bool {
    let lower = text.to_lowercase();
    rules::score(text, &lower, &lex.no_conversation, true) >= 2.0
}

/// A turn without its bracketed stage directions ("[line drops]", "（挂断）").
fn spoken_part(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut depth = 0i32;
    for c in text.chars() {
        match c {
            '[' | '（' | '(' | '【' => depth += 1,
            ']' | '）' | ')' | '】' => depth = (depth - 1).max(0),
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

fn intent(
    lex: &rules::Lexicon,
    model: &nb::Model,
    transcript: &str,
    turns: &[Turn],
    customer: &[&Turn],
) -> Intent {
    let lower_all = transcript.to_lowercase();
    let prompts = rules::score(transcript, &lower_all, &lex.no_conversation, true);
    let spoken: Vec<&&Turn> = customer
        .iter()
        .filter(|t| !machine(lex, &t.text) && substantive(lex, &spoken_part(&t.text)))
        .collect();
    // Nothing said by a person on the customer's side: a hang-up on the pitch is a refusal,
    // anything else no conversation.
    if spoken.is_empty() || (prompts >= 3.0 && spoken.len() <= 1 && turns.len() <= 2) {
        let hung_up = customer.iter().any(|t| {
            let l = t.text.to_lowercase();
            ["挂断", "挂了电话", "hangs up", "hung up"]
                .iter()
                .any(|w| l.contains(w))
        });
        let pitched = turns.iter().filter(|t| t.speaker == Speaker::Agent).count() >= 2;
        return if hung_up && pitched && prompts < 3.0 {
            Intent::NotInterested
        } else {
            Intent::NoConversation
        };
    }
    let scores = rule_scores(lex, turns, &spoken);
    // A wrong person is a wrong number whatever else is said.
    let wrong = scores[4];
    if wrong >= 3.0 {
        return Intent::WrongNumber;
    }
    let mut ranked: Vec<(usize, f32)> = scores.iter().copied().enumerate().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    let said: String = spoken
        .iter()
        .map(|t| t.text.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    match (ranked.first(), ranked.get(1)) {
        // No cue: the model decides among the five (undecided when it has nothing).
        (Some((_, s)), _) if *s <= 0.0 => {
            if prompts >= 3.0 {
                Intent::NoConversation
            } else {
                let all: Vec<&str> = lex.intents.iter().map(|(i, _)| i.name()).collect();
                model
                    .best(&said, &all)
                    .and_then(|l| Intent::parse(&l))
                    .unwrap_or(Intent::Considering)
            }
        }
        // Close: the model picks between the two.
        (Some((a, sa)), Some((b, sb))) if sa - sb < CLOSE => {
            let two = [lex.intents[*a].0, lex.intents[*b].0];
            model
                .best(&said, &[two[0].name(), two[1].name()])
                .and_then(|l| Intent::parse(&l))
                .unwrap_or(two[0])
        }
        (Some((a, _)), _) => lex.intents[*a].0,
        (None, _) => Intent::Considering,
    }
}

/// The rules' score of each of the five spoken intents (in the lexicon's order), from the
/// customer's turns that a person spoke (later ones counting more) and the agent's apologies
/// for a wrong person.
fn rule_scores(lex: &rules::Lexicon, turns: &[Turn], spoken: &[&&Turn]) -> [f32; 5] {
    let n = spoken.len();
    let mut scores = [0f32; 5];
    for (i, t) in spoken.iter().enumerate() {
        // The final stance counts most, unless it is a bare acknowledgement ("好", "要得",
        // "Sure.") of what was settled before it.
        let short = {
            let s = spoken_part(&t.text);
            let han = s.chars().filter(|c| is_han(*c)).count();
            let words = s.split_whitespace().count();
            (han > 0 && han <= 4) || (han == 0 && words <= 2)
        };
        let w = match (n - 1 - i, short) {
            (0, false) => 2.5,
            (0, true) | (1, _) => 1.5,
            _ => 1.0,
        };
        let lower = t.text.to_lowercase();
        for (k, (_, cues)) in lex.intents.iter().enumerate() {
            scores[k] += w * rules::score(&t.text, &lower, cues, false);
        }
    }
    // The agent's apology for the wrong person confirms it.
    for t in turns.iter().filter(|t| t.speaker == Speaker::Agent) {
        let lower = t.text.to_lowercase();
        scores[4] += 0.5 * rules::score(&t.text, &lower, &lex.agent_wrong, false);
    }
    scores
}

/// Rule scores closer than this leave the choice to the model.
const CLOSE: f32 = 1.0;

fn sentiment(lex: &rules::Lexicon, intent: Intent, customer: &[&Turn]) -> Sentiment {
    if intent == Intent::NoConversation {
        return Sentiment::Neutral;
    }
    // Thanks and "no bother" in a refusal, a wrong number or a call-me-later are politeness
    // more than warmth.
    let polite = matches!(
        intent,
        Intent::NotInterested | Intent::WrongNumber | Intent::Inconvenient
    );
    let mut s = 0.0;
    for t in customer {
        let lower = t.text.to_lowercase();
        let mut pos = rules::score(&t.text, &lower, &lex.positive, false);
        let neg = rules::score(&t.text, &lower, &lex.negative, true);
        // A praise word in quotes is sarcasm ("真是太"贴心"了").
        let quoted = quoted_positive(lex, &t.text);
        pos -= quoted;
        if polite {
            pos *= POLITE;
        }
        let mut turn = pos - neg - quoted;
        // Exclamations lean the way the words do.
        if t.text.contains('!') || t.text.contains('！') {
            turn *= 1.2;
        }
        // Hanging up on the agent.
        if ["挂断", "挂了电话", "hangs up", "hung up"]
            .iter()
            .any(|w| lower.contains(w))
        {
            turn -= 1.0;
        }
        s += turn;
    }
    let prior = match intent {
        Intent::Interested => 0.6,
        Intent::NotInterested => -0.3,
        _ => 0.0,
    };
    rules::sentiment_of(s + prior)
}

/// How much praise words count in a refusal, a wrong number or a call-me-later.
const POLITE: f32 = 0.6;

/// The weight of praise words said in quotes (sarcasm).
fn quoted_positive(lex: &rules::Lexicon, text: &str) -> f32 {
    let mut total = 0.0;
    for (open, close) in [('"', '"'), ('“', '”'), ('「', '」')] {
        let mut rest = text;
        while let Some(i) = rest.find(open) {
            let after = &rest[i + open.len_utf8()..];
            let Some(j) = after.find(close) else {
                break;
            };
            let inner = &after[..j];
            if inner.chars().count() <= 8 {
                let lower = inner.to_lowercase();
                total += rules::score(inner, &lower, &lex.positive, false);
            }
            rest = &after[j + close.len_utf8()..];
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grades_follow_intents() {
        let grades: Vec<&str> = Intent::ALL.iter().map(|i| i.grade()).collect();
        assert_eq!(grades, ["A", "B", "C", "D", "E", "F"]);
        for i in Intent::ALL {
            assert_eq!(Intent::parse(i.name()), Some(i));
        }
    }

    #[test]
    fn plain_cases_in_both_languages() {
        let a = Analyzer::new();
        let cases = [
            (
                "坐席：您好，明天上午十点来面试可以吗？\n客户：可以，我一定准时到。",
                Intent::Interested,
            ),
            (
                "坐席：您好，宽带续费有优惠。\n客户：我考虑一下，你把资料发我微信。",
                Intent::Considering,
            ),
            (
                "坐席：您好\n客户：我在开车，晚点再打给我。",
                Intent::Inconvenient,
            ),
            (
                "坐席：您好\n客户：不需要，以后别再打了！",
                Intent::NotInterested,
            ),
            (
                "坐席：请问是王建国先生吗？\n客户：你打错了，我不是。",
                Intent::WrongNumber,
            ),
            ("您拨打的号码是空号，请查证后再拨。", Intent::NoConversation),
            (
                "Agent: Can you come in Tuesday at 3?\nCustomer: Sure, sounds good, see you then.",
                Intent::Interested,
            ),
            (
                "Agent: Hi, this is Acme.\nCustomer: I'm driving, call me back later.",
                Intent::Inconvenient,
            ),
            (
                "Agent: Hi\nCustomer: Not interested. Take me off your list.",
                Intent::NotInterested,
            ),
            (
                "Agent: Is this Jennifer Smith?\nCustomer: Wrong number, no one by that name here.",
                Intent::WrongNumber,
            ),
            (
                "Hi, you've reached Tom. Leave a message after the tone.",
                Intent::NoConversation,
            ),
        ];
        for (text, want) in cases {
            assert_eq!(a.analyze(text).intent, want, "{text}");
        }
    }

    #[test]
    fn language_and_empty_input() {
        let a = Analyzer::new();
        assert_eq!(a.analyze("坐席：您好\n客户：好的").language, "zh");
        assert_eq!(a.analyze("Agent: hello\nCustomer: fine").language, "en");
        let empty = a.analyze("");
        assert_eq!(empty.intent, Intent::NoConversation);
        assert_eq!(empty.grade, "F");
        assert!(empty.keywords.is_empty());
        assert!(!empty.summary.is_empty());
    }
}
