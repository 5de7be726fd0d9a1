//! Reading an RDB dump (a file, or stdin) through the streaming parser: 1 MiB at a time, so
//! a dump of any size takes the same memory, and never past the RDB's end.

use std::io::{self, Read};

use crate::protocol::rdb::{Parser, Summary};

/// Analyses the RDB read from `input`, keeping the `top` biggest keys. `progress` is called
/// after each read with the bytes read so far. Read errors are returned; a damaged RDB is not
/// an error here (it is in the summary).
pub fn analyse(
    mut input: impl Read,
    top: usize,
    mut progress: impl FnMut(u64),
) -> io::Result<Summary> {
    let mut parser = Parser::new(top);
    let mut buf = vec![0u8; 1 << 20];
    let mut read = 0u64;
    while !parser.is_finished() {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        read += n as u64;
        parser.feed(&buf[..n]);
        progress(read);
    }
    Ok(parser.finish())
}
