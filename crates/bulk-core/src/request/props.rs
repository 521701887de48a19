//! Property tests of the parent module (filled in below).
