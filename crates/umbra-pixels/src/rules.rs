//! Known burned-in text regions, as data: rules that say "images that look like this carry text
//! there".
//!
//! A rule has a `name`, a `source` (where it comes from), conditions on attributes (`when`) and
//! rectangles in pixels (`regions`, or `whole = true` for the whole image). A [`RuleSet`] is
//! built from TOML ([`RuleSet::from_toml`], format in `data/rules/README.md`) or is the built-in
//! set ([`RuleSet::builtin`]): pydicom/deid's `deid.dicom` filters and RSNA CTP's
//! `DicomPixelAnonymizer.script`, converted by `tools/import-pixel-rules.py` (provenance,
//! licences and the upstream rules left out are listed in `data/rules/`).
//!
//! # Conditions
//!
//! Every entry of `when` must hold (AND); an entry `{ any = [...] }` holds when one of its
//! entries does (OR). An empty `when` matches every image. A test names an attribute by its
//! keyword and an `op`:
//!
//! | op | holds when |
//! |---|---|
//! | `equals` | the attribute is present and its value is `value` |
//! | `not-equals` | the attribute is missing, or its value is not `value` |
//! | `contains` | the attribute is present and `value` occurs in its value |
//! | `not-contains` | the attribute is missing, or `value` does not occur in its value |
//! | `starts-with`, `ends-with` | the attribute is present and its value starts / ends with `value` |
//! | `regex` | the attribute is present and the regular expression `value` matches somewhere in its value (a search; anchor with `^...$` for a whole match) |
//! | `not-regex` | the attribute is missing, or `regex` does not hold |
//! | `missing` | the attribute is absent |
//! | `present` | the attribute is present (even empty) |
//! | `empty` | the attribute is present with an empty value |
//!
//! `case-insensitive = true` compares after lower-casing both sides (for `regex`, the
//! expression is compiled case-insensitively). The attribute's value is what the caller's
//! `attr` function gives (the value as text, several values joined by `\`), with surrounding
//! spaces, white space and NUL padding removed; the rule's `value` is used as written.
//!
//! # Matching
//!
//! A TOML file sets `match = "all"` (the default: every rule whose conditions hold gives its
//! regions, as in deid) or `match = "first"` (only the first such rule of that file, as in CTP).
//! [`RuleSet::extend`] keeps each file's mode: the built-in set is deid (`all`) then CTP
//! (`first`), so an image can collect regions from several deid rules and from one CTP rule.
//!
//! # What the upstream rules meant, and what they became
//!
//! - deid `contains F V` is a case-insensitive regular-expression *search* of `V` in `F`
//!   (`re.search` on lower-cased, stripped text): imported as `contains` with
//!   `case-insensitive` when `V` has no regular-expression character, else as `regex`.
//!   `notcontains` likewise as `not-contains` / `not-regex`. `equals`/`notequals` are
//!   case-insensitive whole-string comparisons (`equals` / `not-equals`); a missing attribute
//!   never equals and always "not-equals". `missing`, `present`, `empty` are kept.
//!   Within one line, `||` and `+` fold left to right without precedence (deid's
//!   `evaluate_group`); the importer writes that fold as AND-of-OR entries. The lines of a
//!   `LABEL` are all ANDed, whatever operator starts them (that is what deid's `detect.py` does).
//!   `coordinates x0,y0,x1,y1` are corners (`x = x0, width = x1 - x0`), `ctpcoordinates` are
//!   `x,y,width,height`, `coordinates all` is `whole = true`.
//! - CTP signatures are expressions over `Keyword.method("text")` with `*` (AND, binds
//!   tighter), `+` (OR), parentheses; a missing attribute reads as the empty string.
//!   `equals`, `contains`, `startsWith`, `endsWith` are case-sensitive, their `IgnoreCase`
//!   forms are not; `matches` (a whole-string Java regular expression) becomes `regex` anchored
//!   with `^(?:...)$`. Regions are `(x,y,width,height)`. CTP uses only the first signature that
//!   matches, hence `match = "first"`.
//!
//! Regions are clipped to the image (as both upstreams do); a region wholly outside it is
//! dropped.

use std::sync::OnceLock;

use regex::{Regex, RegexBuilder};
use serde::Deserialize;
use toml::Spanned;

use crate::Rect;

/// The deid rules, generated from `data/rules/upstream/deid.dicom`.
const DEID_TOML: &str = include_str!("../data/rules/deid.toml");
/// The CTP rules, generated from `data/rules/upstream/DicomPixelAnonymizer.script`.
const CTP_TOML: &str = include_str!("../data/rules/ctp.toml");

/// A rule file that could not be read. The message is one line and names the file (the
/// `source` given to [`RuleSet::from_toml`]) and the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// The text is not TOML, or not the rule format (unknown key, wrong type, missing key).
    #[error("{file}:{line}: {message}")]
    Syntax {
        /// The source name given to [`RuleSet::from_toml`].
        file: String,
        /// 1-based line of the error (0 when the parser gave no position).
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A rule is well-formed TOML but not a valid rule (unknown op, missing value, bad regular
    /// expression, region out of range, no region).
    #[error("{file}:{line}: rule {rule:?}: {message}")]
    Rule {
        /// The source name given to [`RuleSet::from_toml`].
        file: String,
        /// 1-based line of the offending entry.
        line: usize,
        /// The rule's name.
        rule: String,
        /// What is wrong.
        message: String,
    },
}

/// A set of region rules: see the [module documentation](self).
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    groups: Vec<Group>,
}

#[derive(Debug, Clone)]
struct Group {
    first_match: bool,
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
struct Rule {
    name: String,
    source: String,
    when: Vec<Condition>,
    whole: bool,
    regions: Vec<Rect>,
}

#[derive(Debug, Clone)]
enum Condition {
    Test(Test),
    Any(Vec<Condition>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Equals,
    NotEquals,
    Contains,
    NotContains,
    StartsWith,
    EndsWith,
    Regex,
    NotRegex,
    Missing,
    Present,
    Empty,
}

impl Op {
    const ALL: [(&'static str, Op); 11] = [
        ("equals", Op::Equals),
        ("not-equals", Op::NotEquals),
        ("contains", Op::Contains),
        ("not-contains", Op::NotContains),
        ("starts-with", Op::StartsWith),
        ("ends-with", Op::EndsWith),
        ("regex", Op::Regex),
        ("not-regex", Op::NotRegex),
        ("missing", Op::Missing),
        ("present", Op::Present),
        ("empty", Op::Empty),
    ];

    fn parse(s: &str) -> Option<Op> {
        Op::ALL.iter().find(|(n, _)| *n == s).map(|(_, op)| *op)
    }

    fn takes_value(self) -> bool {
        !matches!(self, Op::Missing | Op::Present | Op::Empty)
    }
}

#[derive(Debug, Clone)]
struct Test {
    attribute: String,
    op: Op,
    /// Lower-cased when `case_insensitive`.
    value: String,
    case_insensitive: bool,
    regex: Option<Regex>,
}

impl Test {
    fn holds(&self, attr: &dyn Fn(&str) -> Option<String>) -> bool {
        let got = attr(&self.attribute);
        let got = got
            .as_deref()
            .map(|v| v.trim_matches(|c: char| c.is_whitespace() || c == '\0'));
        match self.op {
            Op::Missing => got.is_none(),
            Op::Present => got.is_some(),
            Op::Empty => got.is_some_and(str::is_empty),
            Op::NotEquals => !got.is_some_and(|v| self.positive(Op::Equals, v)),
            Op::NotContains => !got.is_some_and(|v| self.positive(Op::Contains, v)),
            Op::NotRegex => !got.is_some_and(|v| self.positive(Op::Regex, v)),
            op => got.is_some_and(|v| self.positive(op, v)),
        }
    }

    fn positive(&self, op: Op, v: &str) -> bool {
        if op == Op::Regex {
            return self.regex.as_ref().is_some_and(|re| re.is_match(v));
        }
        let lowered;
        let v = if self.case_insensitive {
            lowered = v.to_lowercase();
            lowered.as_str()
        } else {
            v
        };
        let want = self.value.as_str();
        match op {
            Op::Equals => v == want,
            Op::Contains => v.contains(want),
            Op::StartsWith => v.starts_with(want),
            Op::EndsWith => v.ends_with(want),
            _ => false,
        }
    }
}

impl Condition {
    fn holds(&self, attr: &dyn Fn(&str) -> Option<String>) -> bool {
        match self {
            Condition::Test(t) => t.holds(attr),
            Condition::Any(list) => list.iter().any(|c| c.holds(attr)),
        }
    }
}

impl Rule {
    fn matches(&self, attr: &dyn Fn(&str) -> Option<String>) -> bool {
        self.when.iter().all(|c| c.holds(attr))
    }
}

// --- the TOML format -------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileToml {
    #[serde(default, rename = "match")]
    match_: Option<Spanned<String>>,
    #[serde(default)]
    rule: Vec<Spanned<RuleToml>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleToml {
    name: String,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    when: Vec<Spanned<ConditionToml>>,
    #[serde(default)]
    regions: Vec<Spanned<RegionToml>>,
    #[serde(default)]
    whole: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConditionToml {
    #[serde(default)]
    attribute: Option<String>,
    #[serde(default)]
    op: Option<String>,
    #[serde(default)]
    value: Option<String>,
    #[serde(default, rename = "case-insensitive")]
    case_insensitive: bool,
    #[serde(default)]
    any: Option<Vec<Spanned<ConditionToml>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegionToml {
    x: i64,
    y: i64,
    width: i64,
    height: i64,
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).map_or(0, |before| {
        before.bytes().filter(|&b| b == b'\n').count() + 1
    })
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

struct Ctx<'a> {
    text: &'a str,
    file: &'a str,
    rule: String,
}

impl Ctx<'_> {
    fn err(&self, offset: usize, message: impl Into<String>) -> RuleError {
        RuleError::Rule {
            file: self.file.to_string(),
            line: line_of(self.text, offset),
            rule: self.rule.clone(),
            message: one_line(&message.into()),
        }
    }

    fn condition(&self, c: &Spanned<ConditionToml>) -> Result<Condition, RuleError> {
        let at = c.span().start;
        let c = c.get_ref();
        if let Some(any) = &c.any {
            if c.attribute.is_some() || c.op.is_some() || c.value.is_some() || c.case_insensitive {
                return Err(self.err(
                    at,
                    "an `any` entry has only `any` (put the tests inside it)",
                ));
            }
            if any.is_empty() {
                return Err(self.err(at, "`any` is empty (it would never hold)"));
            }
            let list = any
                .iter()
                .map(|c| self.condition(c))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(Condition::Any(list));
        }
        let Some(attribute) = c.attribute.clone() else {
            return Err(self.err(at, "condition has no `attribute` (nor `any`)"));
        };
        if attribute.is_empty()
            || !attribute.starts_with(|ch: char| ch.is_ascii_alphabetic())
            || !attribute.chars().all(|ch| ch.is_ascii_alphanumeric())
        {
            return Err(self.err(
                at,
                format!(
                    "attribute {attribute:?} is not a keyword (e.g. \"ManufacturerModelName\")"
                ),
            ));
        }
        let Some(op_name) = c.op.as_deref() else {
            return Err(self.err(at, format!("condition on {attribute} has no `op`")));
        };
        let Some(op) = Op::parse(op_name) else {
            let known: Vec<&str> = Op::ALL.iter().map(|(n, _)| *n).collect();
            return Err(self.err(
                at,
                format!("unknown op {op_name:?} (one of {})", known.join(", ")),
            ));
        };
        let value = match (&c.value, op.takes_value()) {
            (Some(v), true) => v.clone(),
            (None, true) => {
                return Err(self.err(at, format!("op {op_name:?} needs a `value`")));
            }
            (Some(_), false) => {
                return Err(self.err(at, format!("op {op_name:?} takes no `value`")));
            }
            (None, false) => String::new(),
        };
        let regex = if matches!(op, Op::Regex | Op::NotRegex) {
            let re = RegexBuilder::new(&value)
                .case_insensitive(c.case_insensitive)
                .size_limit(1 << 20)
                .build()
                .map_err(|e| self.err(at, format!("bad regular expression {value:?}: {e}")))?;
            Some(re)
        } else {
            None
        };
        let value = if c.case_insensitive {
            value.to_lowercase()
        } else {
            value
        };
        Ok(Condition::Test(Test {
            attribute,
            op,
            value,
            case_insensitive: c.case_insensitive,
            regex,
        }))
    }

    fn region(&self, r: &Spanned<RegionToml>) -> Result<Rect, RuleError> {
        let at = r.span().start;
        let r = r.get_ref();
        let field = |name: &str, v: i64| {
            u16::try_from(v)
                .map_err(|_| self.err(at, format!("region {name} = {v} is outside 0..=65535")))
        };
        let rect = Rect {
            x: field("x", r.x)?,
            y: field("y", r.y)?,
            width: field("width", r.width)?,
            height: field("height", r.height)?,
        };
        if rect.is_empty() {
            return Err(self.err(at, "region has no area (width or height is 0)"));
        }
        Ok(rect)
    }
}

fn clip(r: Rect, rows: u16, columns: u16) -> Rect {
    let x = r.x.min(columns);
    let y = r.y.min(rows);
    let right = (u32::from(r.x) + u32::from(r.width)).min(u32::from(columns));
    let bottom = (u32::from(r.y) + u32::from(r.height)).min(u32::from(rows));
    Rect {
        x,
        y,
        width: right.saturating_sub(u32::from(x)) as u16,
        height: bottom.saturating_sub(u32::from(y)) as u16,
    }
}

impl RuleSet {
    /// The built-in rules: pydicom/deid's `deid.dicom` filters (every matching rule applies),
    /// then RSNA CTP's `DicomPixelAnonymizer.script` (the first matching signature applies).
    pub fn builtin() -> RuleSet {
        static BUILTIN: OnceLock<RuleSet> = OnceLock::new();
        BUILTIN
            .get_or_init(|| {
                let mut set = RuleSet::from_toml(DEID_TOML, "deid.toml")
                    .unwrap_or_else(|e| panic!("built-in rules: {e}"));
                set.extend(
                    RuleSet::from_toml(CTP_TOML, "ctp.toml")
                        .unwrap_or_else(|e| panic!("built-in rules: {e}")),
                );
                set
            })
            .clone()
    }

    /// Reads rules in Umbra's TOML format (`data/rules/README.md`). `source` names the text in
    /// error messages and in rules without a `source` of their own (`source:line`).
    pub fn from_toml(text: &str, source: &str) -> Result<RuleSet, RuleError> {
        let file: FileToml = toml::from_str(text).map_err(|e| RuleError::Syntax {
            file: source.to_string(),
            line: e.span().map_or(0, |s| line_of(text, s.start)),
            message: one_line(e.message()),
        })?;
        let first_match = match &file.match_ {
            None => false,
            Some(m) => match m.get_ref().as_str() {
                "all" => false,
                "first" => true,
                other => {
                    return Err(RuleError::Syntax {
                        file: source.to_string(),
                        line: line_of(text, m.span().start),
                        message: format!("match = {other:?}: expected \"all\" or \"first\""),
                    });
                }
            },
        };
        let mut rules = Vec::with_capacity(file.rule.len());
        for spanned in &file.rule {
            let at = spanned.span().start;
            let r = spanned.get_ref();
            let ctx = Ctx {
                text,
                file: source,
                rule: r.name.clone(),
            };
            if r.name.trim().is_empty() {
                return Err(ctx.err(at, "rule has an empty `name`"));
            }
            let when = r
                .when
                .iter()
                .map(|c| ctx.condition(c))
                .collect::<Result<Vec<_>, _>>()?;
            let regions = r
                .regions
                .iter()
                .map(|g| ctx.region(g))
                .collect::<Result<Vec<_>, _>>()?;
            if regions.is_empty() && !r.whole {
                return Err(ctx.err(at, "rule has no `regions` and no `whole = true`"));
            }
            rules.push(Rule {
                name: r.name.clone(),
                source: r
                    .source
                    .clone()
                    .unwrap_or_else(|| format!("{source}:{}", line_of(text, at))),
                when,
                whole: r.whole,
                regions,
            });
        }
        Ok(RuleSet {
            groups: vec![Group { first_match, rules }],
        })
    }

    /// Adds `other`'s rules after these; each keeps its file's matching mode.
    pub fn extend(&mut self, other: RuleSet) {
        self.groups.extend(other.groups);
    }

    /// The number of rules.
    pub fn len(&self) -> usize {
        self.groups.iter().map(|g| g.rules.len()).sum()
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every rule's name and source, in order (for reports and listings).
    pub fn rules(&self) -> impl Iterator<Item = (&str, &str)> {
        self.groups
            .iter()
            .flat_map(|g| g.rules.iter())
            .map(|r| (r.name.as_str(), r.source.as_str()))
    }

    /// Regions for an object described by `attr` (keyword → value as text, e.g. `"Modality"` →
    /// `"US"`, `"Rows"` → `"480"`, several values joined by `\`; `None` when the attribute is
    /// absent), clipped to `rows` x `columns`, each with the name of the rule that gave it.
    /// Regions that fall wholly outside the image are dropped; `whole = true` gives the whole
    /// image.
    pub fn regions(
        &self,
        attr: &dyn Fn(&str) -> Option<String>,
        rows: u16,
        columns: u16,
    ) -> Vec<(String, Rect)> {
        let mut out = Vec::new();
        for group in &self.groups {
            for rule in &group.rules {
                if !rule.matches(attr) {
                    continue;
                }
                let whole = rule.whole.then_some(Rect {
                    x: 0,
                    y: 0,
                    width: columns,
                    height: rows,
                });
                for r in whole.into_iter().chain(rule.regions.iter().copied()) {
                    let r = clip(r, rows, columns);
                    if !r.is_empty() {
                        out.push((rule.name.clone(), r));
                    }
                }
                if group.first_match {
                    break;
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    fn one(text: &str) -> RuleSet {
        RuleSet::from_toml(text, "t.toml").unwrap()
    }

    #[test]
    fn ops_follow_their_table() {
        let rule = |op: &str, value: Option<&str>, ci: bool| {
            let v = value.map_or(String::new(), |v| format!(", value = {v:?}"));
            one(&format!(
                "[[rule]]\nname = \"r\"\nwhen = [{{ attribute = \"A\", op = \"{op}\"{v}, case-insensitive = {ci} }}]\nregions = [{{ x = 0, y = 0, width = 1, height = 1 }}]\n"
            ))
        };
        let hit = |set: &RuleSet, a: Option<&str>| {
            let f = move |k: &str| {
                if k == "A" {
                    a.map(str::to_string)
                } else {
                    None
                }
            };
            !set.regions(&f, 4, 4).is_empty()
        };
        let eq = rule("equals", Some("US"), false);
        assert!(hit(&eq, Some("US")));
        assert!(hit(&eq, Some(" US \0")));
        assert!(!hit(&eq, Some("us")));
        assert!(!hit(&eq, None));
        let eqi = rule("equals", Some("US"), true);
        assert!(hit(&eqi, Some("us")));
        let ne = rule("not-equals", Some("US"), true);
        assert!(hit(&ne, None));
        assert!(!hit(&ne, Some("us")));
        assert!(hit(&ne, Some("CT")));
        let c = rule("contains", Some("GE MED"), true);
        assert!(hit(&c, Some("ge medical systems")));
        assert!(!hit(&c, Some("Siemens")));
        let nc = rule("not-contains", Some("x"), false);
        assert!(hit(&nc, None));
        assert!(!hit(&nc, Some("axb")));
        let sw = rule("starts-with", Some("LOGIQ"), false);
        assert!(hit(&sw, Some("LOGIQE9")));
        assert!(!hit(&sw, Some("xLOGIQ")));
        let ew = rule("ends-with", Some("E9"), false);
        assert!(hit(&ew, Some("LOGIQE9")));
        let re = rule("regex", Some("LOGIQE9|V830"), true);
        assert!(hit(&re, Some("Logiq V830 R2")));
        assert!(!hit(&re, Some("LOGIQ9")));
        let nre = rule("not-regex", Some("^a+$"), false);
        assert!(hit(&nre, None));
        assert!(!hit(&nre, Some("aaa")));
        assert!(hit(&rule("missing", None, false), None));
        assert!(!hit(&rule("missing", None, false), Some("")));
        assert!(hit(&rule("present", None, false), Some("")));
        assert!(!hit(&rule("present", None, false), None));
        assert!(hit(&rule("empty", None, false), Some("  ")));
        assert!(!hit(&rule("empty", None, false), Some("x")));
        assert!(!hit(&rule("empty", None, false), None));
    }

    #[test]
    fn first_match_stops_at_the_first_rule_and_all_does_not() {
        let body = "[[rule]]\nname = \"a\"\nregions = [{ x = 0, y = 0, width = 2, height = 2 }]\n\
                    [[rule]]\nname = \"b\"\nwhole = true\n";
        let none = |_: &str| None;
        let all = one(body);
        assert_eq!(all.regions(&none, 3, 3).len(), 2);
        let first = one(&format!("match = \"first\"\n{body}"));
        let got = first.regions(&none, 3, 3);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, "a");
        let mut both = first.clone();
        both.extend(all);
        assert_eq!(both.len(), 4);
        assert_eq!(both.regions(&none, 3, 3).len(), 3);
    }

    #[test]
    fn whole_is_the_image() {
        let set = one("[[rule]]\nname = \"w\"\nwhole = true\n");
        let f = attrs(&[]);
        assert_eq!(
            set.regions(&f, 480, 640),
            vec![(
                "w".to_string(),
                Rect {
                    x: 0,
                    y: 0,
                    width: 640,
                    height: 480
                }
            )]
        );
    }
}
