//! What a two-connection sync's connections announced, against the RDB the master wrote for
//! them: Valkey's RDB-version trap (valkey #4103, fixed by #4105). A Valkey 9 master chooses
//! the RDB version per replica from the `REPLCONF version` of the connection the RDB goes to
//! (`protocol::rdb::version`). A 9.1 replica whose RDB connection announced no version gets RDB
//! 11; a dataset that needs the newer format (hash fields with TTLs) cannot be saved in it:
//! the fork's save fails ("Can't store key … in RDB version 11" in the master's log), the RDB
//! connection is closed before any RDB byte (seen live on 9.1.2), and the replica full-syncs
//! again, in a loop.

use crate::analyzer::event::WarningKind;
use crate::protocol::rdb::version::{major_minor, valkey_version_for, FIRST_VALKEY};
use crate::protocol::rdb::Header;
use crate::report::timing::Warning;
use crate::report::SessionReport;

/// What the RDB connection showed of the RDB the master chose for it.
#[derive(Debug, Clone, Copy)]
pub enum RdbSeen<'a> {
    /// Its header went by.
    Header(&'a Header),
    /// The connection ended before its RDB was whole.
    CutShort,
}

/// The warning for `main`'s sync when what its RDB connection `rdb` announced got it an older
/// RDB version than the replica's own (announced on `main`) calls for; `None` when the RDB is
/// what the replica reads, when the master is not a Valkey 9, or when it was said already.
pub fn rdb_version_trap(
    seen: RdbSeen<'_>,
    main: &SessionReport,
    rdb: &SessionReport,
) -> Option<Warning> {
    if main
        .timing
        .warnings_by_kind
        .contains_key(&WarningKind::RdbVersion)
    {
        return None;
    }
    let replica = main.handshake.options.get("version")?;
    let wanted = valkey_version_for(Some(replica));
    let announced = rdb.handshake.options.get("version");
    if announced.is_some_and(|a| valkey_version_for(Some(a)) >= wanted) {
        return None;
    }
    let said = match announced {
        Some(v) => format!("announced version {v}"),
        None => "announced no REPLCONF version".to_string(),
    };
    let wanted_header = Header {
        magic: if wanted >= FIRST_VALKEY {
            "VALKEY"
        } else {
            "REDIS"
        }
        .into(),
        version: wanted,
        written_by: None,
    }
    .as_written();
    let what = match seen {
        // Only a Valkey 9 master chooses per replica; an older one writes its one version.
        RdbSeen::Header(header) if header.valkey_writer()? >= (9, 0) && header.version < wanted => {
            format!(
                "so the {} master wrote {} instead of the {wanted_header} a {replica} replica \
                 gets; a dataset that needs the newer format (hash fields with TTLs) cannot be \
                 saved in it: the save aborts, the RDB connection is closed, and the replica \
                 full-syncs again, in a loop",
                header.written_by.as_deref().unwrap_or("?"),
                header.as_written(),
            )
        }
        RdbSeen::CutShort if major_minor(replica)? >= (9, 0) => format!(
            "and the connection ended before its RDB was whole: a Valkey 9 master writes such \
             a connection an older RDB ({}) than the {wanted_header} a {replica} replica gets, \
             and a dataset that needs the newer format (hash fields with TTLs) cannot be saved \
             in it (the master logs \"Can't store key ... in RDB version 11\"); the replica \
             full-syncs again, in a loop",
            Header {
                magic: "REDIS".into(),
                version: valkey_version_for(announced.map(String::as_str)),
                written_by: None,
            }
            .as_written()
        ),
        _ => return None,
    };
    let message = format!(
        "RDB-version trap (valkey #4103): the RDB connection (session {}) {said} while the main \
         connection announced {replica}, {what}. Fixed by valkey #4105: upgrade the replica, \
         or set dual-channel-replication-enabled no",
        rdb.id,
    );
    Some(Warning {
        kind: WarningKind::RdbVersion,
        message,
    })
}
