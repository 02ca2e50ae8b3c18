//! Delegates (being written).
