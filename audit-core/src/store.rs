//! The query side of storage (in progress).
