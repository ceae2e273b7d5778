//! Importing a CAR file into the on-disk store (`sluice import`). It lives
//! beside the store it writes; the CAR module only reads the file.

use std::io;
use std::path::Path;

use cid::Cid;

use super::FlatFsStore;
use crate::car::{CarError, CarReader};

/// What an import did.
#[derive(Debug, PartialEq, Eq)]
pub struct ImportSummary {
    pub roots: Vec<Cid>,
    pub blocks: usize,
}

/// Adds every block of the CAR at `path` to `store`. The whole file is
/// verified before anything is written, so a corrupt CAR imports nothing.
pub fn import_car(path: &Path, store: &FlatFsStore) -> Result<ImportSummary, CarError> {
    let open = || -> Result<CarReader<io::BufReader<std::fs::File>>, CarError> {
        let file = std::fs::File::open(path).map_err(CarError::Io)?;
        CarReader::new(io::BufReader::with_capacity(1 << 20, file))
    };
    let mut verify = open()?;
    while verify.next_section()?.is_some() {}
    // Left by an import that was killed mid-write.
    store.remove_stale_temp_files().map_err(CarError::Io)?;

    let mut reader = open()?;
    let roots = reader.roots().to_vec();
    let mut blocks = 0;
    while let Some(section) = reader.next_section()? {
        store
            .put_blocking(&section.cid, &section.data)
            .map_err(CarError::Io)?;
        blocks += 1;
    }
    store.sync_dirs_blocking().map_err(CarError::Io)?;
    Ok(ImportSummary { roots, blocks })
}
