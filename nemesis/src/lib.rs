//! Nemesis: fault injection.
