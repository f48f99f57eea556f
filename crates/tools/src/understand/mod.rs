//! Request understanding: which tool (if any) a message asks for, and the
//! arguments it gives.
