//! What validation found wrong, each problem with its key path.

/// Targets per logical model are tracked in a 64-bit tried-set.
pub const MAX_TARGETS_PER_MODEL: usize = 64;

#[derive(Default)]
pub(super) struct Issues(pub(super) Vec<String>);

impl Issues {
    pub(super) fn add(&mut self, path: impl std::fmt::Display, msg: impl std::fmt::Display) {
        self.0.push(format!("{path}: {msg}"));
    }
}
