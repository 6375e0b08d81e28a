//! The YAML side: the one document of a file, typed deserialization with
//! positions, and finding the position of a place in the document (by
//! walking it again and stopping there: the parser then knows the line).

use std::fmt;

use serde::de::{self, DeserializeOwned, DeserializeSeed, Deserializer, IgnoredAny, Visitor};
use serde::Deserialize as _;
use serde_norway::Value;

use super::error::{DocPath, Fault, Position, Problem, Segment};

/// The one document of a file's text.
pub(crate) struct Document<'a> {
    text: &'a str,
    /// Its index among the file's documents (empty ones before it are skipped).
    index: usize,
}

/// A serde error as a position and a message without the position, with
/// what to change for the usual ones.
pub(crate) fn yaml_fault(error: &serde_norway::Error) -> (Option<Position>, Fault) {
    let position = error.location().map(|l| Position {
        line: l.line(),
        column: l.column(),
    });
    let mut message = error.to_string();
    if let Some(p) = position {
        message = message.replacen(&format!(" at line {} column {}", p.line, p.column), "", 1);
    }
    (position, Fault::outside(Problem::Yaml(explain(message))))
}

/// Serde's unknown and missing field messages, with what to do.
fn explain(message: String) -> String {
    const CHECK: &str = ": check its spelling and indentation";
    if message.contains("unknown field `") {
        return message
            .replacen(
                ", expected one of ",
                &format!("{CHECK}; the fields known here are "),
                1,
            )
            .replacen(", expected ", &format!("{CHECK}; the field known here is "), 1)
            .replacen(
                ", there are no fields",
                &format!("{CHECK}; no field is known here"),
                1,
            );
    }
    if message.contains("missing field `") {
        return format!("{message}: add it");
    }
    message
}

/// A syntax error: the YAML parser's message, with what to do.
fn syntax_fault(error: &serde_norway::Error) -> (Option<Position>, Fault) {
    let (position, fault) = yaml_fault(error);
    let message = format!(
        "{}: the file is not valid YAML here: check the indentation and quoting",
        fault.problem
    );
    (position, Fault::outside(Problem::Yaml(message)))
}

impl<'a> Document<'a> {
    /// The single non-empty document of `text`: none or several are errors
    /// (the second one's position given).
    pub(crate) fn single(text: &'a str) -> Result<Document<'a>, (Option<Position>, Fault)> {
        let mut found = Vec::new();
        for (index, document) in serde_norway::Deserializer::from_str(text).enumerate() {
            // A failed parse yields its error again and again: stop at the first.
            match Option::<Value>::deserialize(document) {
                Ok(None) => {}
                Ok(Some(value)) if value.is_mapping() => found.push(index),
                Ok(Some(_)) => {
                    let document = Document { text, index };
                    let at = DocPath::root();
                    return Err((
                        document.position(&at),
                        Fault::at(
                            &at,
                            Problem::Invalid(
                                "the document is not a mapping: give a Tekton resource (apiVersion, kind, \
                                 metadata, spec)"
                                    .into(),
                            ),
                        ),
                    ));
                }
                Err(e) => return Err(syntax_fault(&e)),
            }
        }
        match found[..] {
            [] => Err((None, Fault::at(&DocPath::root(), Problem::NoDocument))),
            [index] => Ok(Document { text, index }),
            [_, second, ..] => {
                let position = Document { text, index: second }.position(&DocPath::root());
                Err((
                    position,
                    Fault::at(&DocPath::root(), Problem::SeveralDocuments(found.len())),
                ))
            }
        }
    }

    /// The document as a `T`; serde errors carry their position.
    pub(crate) fn parse<T: DeserializeOwned>(&self) -> Result<T, (Option<Position>, Fault)> {
        T::deserialize(self.deserializer()).map_err(|e| yaml_fault(&e))
    }

    /// Where `at` is in the file (the start of its value), if it is there.
    pub(crate) fn position(&self, at: &DocPath) -> Option<Position> {
        let error = Probe(at.segments()).deserialize(self.deserializer()).err()?;
        error.location().map(|l| Position {
            line: l.line(),
            column: l.column(),
        })
    }

    fn deserializer(&self) -> serde_norway::Deserializer<'a> {
        serde_norway::Deserializer::from_str(self.text)
            .nth(self.index)
            .expect("the document was found before")
    }
}

/// Generates the scalar `visit_*` methods of a visitor with `Value = ()`,
/// each returning `self.scalar()`.
macro_rules! visit_scalars {
    ($($method:ident($ty:ty)),*) => {
        $(fn $method<E: de::Error>(self, _: $ty) -> Result<(), E> {
            self.scalar()
        })*
        fn visit_unit<E: de::Error>(self) -> Result<(), E> {
            self.scalar()
        }
        fn visit_none<E: de::Error>(self) -> Result<(), E> {
            self.scalar()
        }
    };
}

/// A visitor that fails with its message on whatever value it meets (so the
/// parser attaches that value's position to the error).
pub(crate) struct Reject(pub(crate) String);

impl Reject {
    fn scalar<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(self.0))
    }
}

impl<'de> Visitor<'de> for Reject {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.0)
    }

    visit_scalars!(
        visit_bool(bool),
        visit_i64(i64),
        visit_u64(u64),
        visit_f64(f64),
        visit_str(&str)
    );

    fn visit_some<D: Deserializer<'de>>(self, _: D) -> Result<(), D::Error> {
        self.scalar()
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        self.scalar()
    }

    fn visit_map<A: de::MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        self.scalar()
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(self.0))
    }
}

/// Walks the document along a path and fails at its end: the error's
/// position is the position of that place. Succeeds when the path is not there.
struct Probe<'p>(&'p [Segment]);

impl Probe<'_> {
    fn scalar<E: de::Error>(self) -> Result<(), E> {
        match self.0 {
            [] => Err(E::custom("found")),
            _ => Ok(()),
        }
    }
}

impl<'de> DeserializeSeed<'de> for Probe<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        match self.0 {
            [] => deserializer.deserialize_any(Reject("found".into())),
            _ => deserializer.deserialize_any(self),
        }
    }
}

impl<'de> Visitor<'de> for Probe<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any value")
    }

    visit_scalars!(
        visit_bool(bool),
        visit_i64(i64),
        visit_u64(u64),
        visit_f64(f64),
        visit_str(&str)
    );

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let target = match self.0.first() {
            Some(Segment::Index(index, _)) => Some(*index),
            _ => None,
        };
        let mut i = 0;
        loop {
            let more = if Some(i) == target {
                seq.next_element_seed(Probe(&self.0[1..]))?
            } else {
                seq.next_element::<IgnoredAny>()?.map(|_| ())
            };
            if more.is_none() {
                return Ok(());
            }
            i += 1;
        }
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let target = match self.0.first() {
            Some(Segment::Key(key)) => Some(key.as_str()),
            _ => None,
        };
        while let Some(key) = map.next_key::<Value>()? {
            if target.is_some() && key.as_str() == target {
                map.next_value_seed(Probe(&self.0[1..]))?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "a:\n  b:\n    - x: 1\n    - x: 2\n      y: [3, 4]\nc: d\n";

    fn at(path: &DocPath) -> Option<(usize, usize)> {
        Document::single(TEXT)
            .map_err(|_| ())
            .unwrap()
            .position(path)
            .map(|p| (p.line, p.column))
    }

    #[test]
    fn finds_the_position_of_a_place() {
        let b = DocPath::root().key("a").key("b");
        assert_eq!(at(&b.index(1, None).key("x")), Some((4, 10)));
        assert_eq!(
            at(&b.index(1, Some("named")).key("y").index(1, None)),
            Some((5, 14))
        );
        assert_eq!(at(&DocPath::root().key("c")), Some((6, 4)));
        assert_eq!(at(&b.index(1, None)), Some((4, 7)));
        assert_eq!(at(&b.index(2, None)), None);
        assert_eq!(at(&DocPath::root().key("nowhere")), None);
    }

    #[test]
    fn counts_documents() {
        assert!(Document::single("---\na: 1\n---\n").is_ok());
        let (position, fault) = Document::single("a: 1\n---\nb: 2\n").err().unwrap();
        assert!(matches!(*fault.problem, Problem::SeveralDocuments(2)));
        assert_eq!(position.map(|p| p.line), Some(3));
        let (_, fault) = Document::single("# nothing\n").err().unwrap();
        assert!(matches!(*fault.problem, Problem::NoDocument));
    }
}
