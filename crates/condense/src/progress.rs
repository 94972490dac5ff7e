//! How long work reports itself to a user interface: stages with a known amount of work,
//! progress within a stage, and lines of information. Libraries report through
//! [`Observer`]; command-line tools draw progress bars behind it.

/// Progress of a long run, for a user interface.
pub trait Observer {
    /// A stage starts (`total` units of work, 0 if unknown).
    fn stage(&mut self, name: &str, total: usize);
    /// Progress within the stage (`done` units).
    fn progress(&mut self, done: usize, message: &str);
    /// A line of information.
    fn note(&mut self, text: &str);
}

/// An [`Observer`] that shows nothing.
pub struct Silent;

impl Observer for Silent {
    fn stage(&mut self, _: &str, _: usize) {}
    fn progress(&mut self, _: usize, _: &str) {}
    fn note(&mut self, _: &str) {}
}
