//! What validation found wrong, each problem with its key path.

/// Targets per logical model are tracked in a 64-bit tried-set.
pub const MAX_TARGETS_PER_MODEL: usize = 64;

use std::fmt;

/// One thing wrong with a config: the key path it is at (`None`: the file
/// as a whole, e.g. its YAML syntax) and what is wrong. Never quotes a
/// secret value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: Option<String>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(p) => write!(f, "{p}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Everything wrong with a config (validation collects them all, not just
/// the first).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    /// A problem of the file as a whole.
    pub fn whole(message: impl Into<String>) -> Problems {
        Problems(vec![Problem {
            path: None,
            message: message.into(),
        }])
    }

    /// Each problem as `path: message`, joined by `sep`.
    pub fn join(&self, sep: &str) -> String {
        self.0
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(sep)
    }

    /// Each problem as `path: message`.
    pub fn lines(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.join("; "))
    }
}

#[derive(Default)]
pub(super) struct Issues(pub(super) Vec<Problem>);

impl Issues {
    pub(super) fn add(&mut self, path: impl fmt::Display, msg: impl fmt::Display) {
        self.0.push(Problem {
            path: Some(path.to_string()),
            message: msg.to_string(),
        });
    }
}
