//! Nothing readable by other local users: the process umask (`077`, set by
//! every door at start, so files SQLite, the models or any library create
//! are 0600 and folders 0700 from their first byte), private file and
//! folder creation for the places Tresor creates itself (mode given at
//! `open`, so there is no 0644 window even when the umask is looser), and
//! the data root tightened to 0700.
//!
//! Owns: file modes. Never: widens a mode, or touches files outside the paths it is given.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// Sets the process umask to `077` (Unix; a no-op elsewhere). Returns the previous mask.
pub fn restrict_umask() -> u32 {
    #[cfg(unix)]
    {
        use rustix::fs::Mode;
        rustix::process::umask(Mode::from_raw_mode(0o077)).bits() as u32
    }
    #[cfg(not(unix))]
    {
        0
    }
}

/// Opens with `opts`, creating the file with mode 0600 when it is created.
pub fn open_private(opts: &mut OpenOptions, path: &Path) -> io::Result<File> {
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(opts, 0o600);
    opts.open(path)
}

/// Creates `dir` and its missing parents with mode 0700.
pub fn create_dir_private(dir: &Path) -> io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
}

/// Creates the data root when missing and makes it 0700 (an existing root
/// made by an older version, or by hand, is tightened too).
pub fn secure_root(root: &Path) -> io::Result<()> {
    create_dir_private(root)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(root)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            std::fs::set_permissions(root, std::fs::Permissions::from_mode(mode & 0o700 | 0o700))?;
        }
    }
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn private_files_and_folders_are_owner_only_from_creation() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("a/b");
        create_dir_private(&dir).unwrap();
        assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
        let f = dir.join("x");
        open_private(OpenOptions::new().create(true).write(true), &f).unwrap();
        assert_eq!(std::fs::metadata(&f).unwrap().permissions().mode() & 0o777, 0o600);
        let root = d.path().join("root");
        std::fs::create_dir(&root).unwrap();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        secure_root(&root).unwrap();
        assert_eq!(std::fs::metadata(&root).unwrap().permissions().mode() & 0o777, 0o700);
    }
}
