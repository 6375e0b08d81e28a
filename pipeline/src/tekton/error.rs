//! Why a file cannot run: [`LoadError`], with the file, the position when it
//! is known, the place in the document, and what to change.

use std::fmt;
use std::io;
use std::path::PathBuf;

use thiserror::Error;

use super::vars::VarError;

/// A Tekton file that cannot run, and why. Displays as
/// `<file>:<line>:<column>: <place>: <message>` (line and place when known).
#[derive(Debug, Error)]
#[error("{}{}: {}{problem}", file.display(), Lc(*position), At(at.as_ref()))]
pub struct LoadError {
    /// The file.
    pub file: PathBuf,
    /// Where in the file, when known.
    pub position: Option<Position>,
    /// Where in the document (`spec.tasks[1] (build).workspaces[0]`); `None`
    /// when the problem is not in the file (a flag) or the message says it.
    pub at: Option<DocPath>,
    /// What is wrong.
    pub problem: Box<Problem>,
}

/// A line and column in the file, from 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    /// The line, from 1.
    pub line: usize,
    /// The column, from 1.
    pub column: usize,
}

/// What is wrong with a file.
#[derive(Debug, Error)]
pub enum Problem {
    /// The file could not be read.
    #[error("cannot read the file: {0}")]
    Read(#[source] io::Error),
    /// Invalid YAML, an unknown or unsupported field, a value of the wrong type.
    #[error("{0}")]
    Yaml(String),
    /// No document at all.
    #[error("holds no Pipeline or PipelineRun: give one Tekton v1 document (kind: Pipeline or PipelineRun)")]
    NoDocument,
    /// More than one document.
    #[error(
        "holds {0} YAML documents, wsfs run takes one: keep a single Pipeline or PipelineRun (for a \
         PipelineRun with a pipelineRef to a Pipeline of this file, move the Pipeline's spec into the \
         PipelineRun as spec.pipelineSpec)"
    )]
    SeveralDocuments(usize),
    /// A required field of the document is missing.
    #[error("{0}")]
    Missing(&'static str),
    /// A name that does not follow its rule.
    #[error("{what} name {name:?} is not valid: {rule}")]
    BadName {
        /// What it names (`task`, `workspace`, ...).
        what: &'static str,
        /// The name given.
        name: String,
        /// The rule, and what to change.
        rule: &'static str,
    },
    /// Two declarations with one name.
    #[error("{what} {name:?} is given twice: keep one")]
    Duplicate {
        /// What it names.
        what: &'static str,
        /// The name.
        name: String,
    },
    /// A reference to something not declared.
    #[error("{what} {name:?} is not declared ({known}): {hint}")]
    Undeclared {
        /// What kind of thing is referred to.
        what: &'static str,
        /// The name referred to.
        name: String,
        /// What is declared (`declared: a, b` or `none is declared`).
        known: String,
        /// What to change.
        hint: String,
    },
    /// A required workspace without anything bound to it.
    #[error("{0}")]
    Unbound(String),
    /// `runAfter` entries forming a cycle.
    #[error("runAfter forms a cycle: {0}: remove one of these runAfter entries")]
    Cycle(String),
    /// A `$(...)` variable that cannot be substituted.
    #[error("$({variable}) in {place}: {why}")]
    Variable {
        /// The variable, without `$(` `)`.
        variable: String,
        /// Where (`task build, step compile`).
        place: String,
        /// Why, and what exists.
        why: String,
    },
    /// Any other value wsfs run cannot use; the message says what to change.
    #[error("{0}")]
    Invalid(String),
}

/// A place in the document: `spec.tasks[1] (build).workspaces[0]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DocPath(Vec<Segment>);

/// One step of a [`DocPath`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    /// A mapping key.
    Key(String),
    /// A sequence index, with the item's name when it has one.
    Index(usize, Option<String>),
}

impl DocPath {
    /// The document's root.
    pub fn root() -> DocPath {
        DocPath::default()
    }

    /// This path, then mapping key `key`.
    pub fn key(&self, key: &str) -> DocPath {
        self.with(Segment::Key(key.to_string()))
    }

    /// This path, then sequence item `index` (named `name`, when it has one).
    pub fn index(&self, index: usize, name: Option<&str>) -> DocPath {
        self.with(Segment::Index(index, name.map(str::to_string)))
    }

    /// The segments, from the root.
    pub fn segments(&self) -> &[Segment] {
        &self.0
    }

    fn with(&self, segment: Segment) -> DocPath {
        let mut segments = self.0.clone();
        segments.push(segment);
        DocPath(segments)
    }
}

impl fmt::Display for DocPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if i == 0 => f.write_str(key)?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(index, None) => write!(f, "[{index}]")?,
                Segment::Index(index, Some(name)) => write!(f, "[{index}] ({name})")?,
            }
        }
        Ok(())
    }
}

/// `:<line>:<column>`, or nothing.
struct Lc(Option<Position>);

impl fmt::Display for Lc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(p) => write!(f, ":{}:{}", p.line, p.column),
            None => Ok(()),
        }
    }
}

/// `<path>: `, or nothing (for no path or the root).
struct At<'a>(Option<&'a DocPath>);

impl fmt::Display for At<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(path) if !path.0.is_empty() => write!(f, "{path}: "),
            _ => Ok(()),
        }
    }
}

/// A problem at a place in the document (or, with `at: None`, outside it),
/// before the file and position are known.
#[derive(Debug)]
pub(crate) struct Fault {
    pub(crate) at: Option<DocPath>,
    pub(crate) problem: Box<Problem>,
}

impl Fault {
    /// A problem at `at`.
    pub(crate) fn at(at: &DocPath, problem: Problem) -> Fault {
        Fault {
            at: Some(at.clone()),
            problem: Box::new(problem),
        }
    }

    /// A problem with a value given outside the file (a flag).
    pub(crate) fn outside(problem: Problem) -> Fault {
        Fault {
            at: None,
            problem: Box::new(problem),
        }
    }

    /// A variable of the field at `at` that cannot be substituted.
    pub(crate) fn variable(at: &DocPath, place: impl Into<String>, (variable, why): VarError) -> Fault {
        let place = place.into();
        Fault::at(at, Problem::Variable { variable, place, why })
    }

    /// [`Problem::Invalid`] at `at`.
    pub(crate) fn invalid(at: &DocPath, message: impl Into<String>) -> Fault {
        Fault::at(at, Problem::Invalid(message.into()))
    }
}

/// `declared: a, b`, or `none is declared`.
pub(crate) fn known<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let names: Vec<&str> = names.into_iter().collect();
    if names.is_empty() {
        "none is declared".to_string()
    } else {
        format!("declared: {}", names.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_file_position_place_and_message() {
        let at = DocPath::root()
            .key("spec")
            .key("tasks")
            .index(1, Some("build"))
            .key("workspaces")
            .index(0, None);
        let error = LoadError {
            file: "p.yaml".into(),
            position: Some(Position { line: 3, column: 7 }),
            at: Some(at),
            problem: Box::new(Problem::Cycle("a -> b -> a".into())),
        };
        assert_eq!(
            error.to_string(),
            "p.yaml:3:7: spec.tasks[1] (build).workspaces[0]: runAfter forms a cycle: a -> b -> a: \
             remove one of these runAfter entries"
        );
        let bare = LoadError {
            file: "p.yaml".into(),
            position: None,
            at: Some(DocPath::root()),
            problem: Box::new(Problem::NoDocument),
        };
        assert!(
            bare.to_string().starts_with("p.yaml: holds no Pipeline"),
            "{bare}"
        );
    }
}
