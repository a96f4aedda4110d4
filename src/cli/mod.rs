//! Command-line edge (in progress).
