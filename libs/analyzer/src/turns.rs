//! A transcript's turns and who spoke them: labelled lines (`坐席：`, `Agent:`, `客户:` ...) or,
//! with no labels, alternating lines with the agent first.

/// Who spoke a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speaker {
    Agent,
    Customer,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    pub speaker: Speaker,
    pub text: String,
}

const AGENT_LABELS: &[&str] = &[
    "坐席",
    "客服",
    "销售",
    "顾问",
    "业务员",
    "专员",
    "机器人",
    "外呼员",
    "招聘",
    "hr",
    "agent",
    "rep",
    "representative",
    "sales",
    "caller",
    "operator",
    "bot",
    "ai",
    "a",
    "s",
];
const CUSTOMER_LABELS: &[&str] = &[
    "客户",
    "用户",
    "顾客",
    "候选人",
    "客人",
    "对方",
    "被叫",
    "customer",
    "client",
    "user",
    "callee",
    "prospect",
    "candidate",
    "b",
    "c",
    "u",
];

/// The label at the start of `line` and the rest, when it has one: a known word followed by a
/// colon (ASCII or full-width), optionally bracketed (`[Agent]:`, `【客服】：`).
fn label(line: &str) -> Option<(Speaker, &str)> {
    let (head, rest) = match (line.find(':'), line.find('：')) {
        (Some(a), Some(b)) if b < a => (&line[..b], &line[b + '：'.len_utf8()..]),
        (Some(a), _) => (&line[..a], &line[a + 1..]),
        (None, Some(b)) => (&line[..b], &line[b + '：'.len_utf8()..]),
        (None, None) => return None,
    };
    if head.chars().count() > 16 {
        return None;
    }
    let name: String = head
        .trim()
        .trim_matches(|c: char| "[]【】()（）<>".contains(c))
        .trim()
        .to_lowercase();
    // "坐席A", "Agent 1", "客户（张先生）": the label word, then anything short.
    let first_word = |labels: &[&str]| {
        labels.iter().any(|l| {
            name == *l
                || (l.chars().count() > 1
                    && name.starts_with(l)
                    && name[l.len()..]
                        .chars()
                        .all(|c| !c.is_alphabetic() || !c.is_ascii()))
        })
    };
    if first_word(AGENT_LABELS) {
        Some((Speaker::Agent, rest.trim()))
    } else if first_word(CUSTOMER_LABELS) {
        Some((Speaker::Customer, rest.trim()))
    } else {
        None
    }
}

/// The turns of `transcript`: one per non-empty line; a line without a label in a labelled
/// transcript continues the turn before it.
pub fn turns(transcript: &str) -> Vec<Turn> {
    let lines: Vec<&str> = transcript
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let labelled = lines.iter().filter(|l| label(l).is_some()).count();
    let mut out: Vec<Turn> = Vec::new();
    if labelled * 2 >= lines.len() && labelled > 0 {
        for l in lines {
            match label(l) {
                Some((speaker, text)) => out.push(Turn {
                    speaker,
                    text: text.to_string(),
                }),
                None => match out.last_mut() {
                    Some(t) => {
                        t.text.push(' ');
                        t.text.push_str(l);
                    }
                    None => out.push(Turn {
                        speaker: Speaker::Agent,
                        text: l.to_string(),
                    }),
                },
            }
        }
    } else {
        for (i, l) in lines.into_iter().enumerate() {
            out.push(Turn {
                speaker: if i % 2 == 0 {
                    Speaker::Agent
                } else {
                    Speaker::Customer
                },
                text: l.to_string(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_in_either_language_and_colon() {
        let t = turns("坐席：您好\n客户:嗯\nAgent: hi\nCustomer：yes\n【客服】：好的\nB: ok");
        let who: Vec<Speaker> = t.iter().map(|t| t.speaker).collect();
        use Speaker::*;
        assert_eq!(who, [Agent, Customer, Agent, Customer, Agent, Customer]);
        assert_eq!(t[1].text, "嗯");
        assert_eq!(t[3].text, "yes");
    }

    #[test]
    fn no_labels_alternate_agent_first() {
        let t = turns("您好，这里是某某公司\n\n哦，什么事\n想请您参加面试");
        let who: Vec<Speaker> = t.iter().map(|t| t.speaker).collect();
        assert_eq!(who, [Speaker::Agent, Speaker::Customer, Speaker::Agent]);
    }

    #[test]
    fn a_colon_in_speech_is_not_a_label() {
        let t = turns("Agent: the time is 10:30, ok?\nCustomer: sure: see you");
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].text, "the time is 10:30, ok?");
        assert_eq!(t[1].text, "sure: see you");
        // A continuation line joins its turn.
        let t = turns("坐席：您好\n请问是王先生吗\n客户：是我");
        assert_eq!(t.len(), 2);
        assert!(t[0].text.contains("王先生"));
    }
}
