//! The initialised MariaDB data dir every test server starts from: made once
//! by `mariadb-install-db` (several seconds) and then copied (a fraction of a
//! second), so a pair starts quickly even when many tests start pairs at once.
//!
//! The template is cached in the system temp dir under a name that hashes the
//! `mariadbd` build and the options, so another MariaDB build or changed
//! options get their own. It is built in a private directory and renamed into
//! place, so concurrent test processes never see a half-built one.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{bail, Context};
use tokio::sync::Mutex;

use crate::mariadb_server::{log_tail, Binaries};

/// Serialises template building within a process: parallel tests wait for one
/// build instead of each running their own.
static BUILD: Mutex<()> = Mutex::const_new(());

/// Marker written last into a finished template.
const COMPLETE: &str = "complete";

/// Options shared by `mariadb-install-db` and `mariadbd`, apart from paths.
/// The InnoDB sizes must match between the two, or the server resizes the
/// redo log on every start.
pub(crate) fn shared_args() -> Vec<String> {
    let mut args = vec![
        "--innodb-buffer-pool-size=16M".to_owned(),
        "--innodb-log-file-size=4M".to_owned(),
        "--innodb-log-buffer-size=2M".to_owned(),
        // Native AIO contexts are a machine-wide limit that parallel pairs
        // could exhaust.
        "--innodb-use-native-aio=0".to_owned(),
    ];
    if running_as_root() {
        // mariadbd refuses to run as root unless told to.
        args.push("--user=root".to_owned());
    }
    args
}

/// Options only `mariadb-install-db` takes.
const INSTALL_ARGS: [&str; 3] = [
    // root@127.0.0.1 with no password, reachable over TCP with skip-name-resolve.
    "--auth-root-authentication-method=normal",
    "--skip-test-db",
    "--skip-name-resolve",
];

/// Copies a freshly initialised data dir to `data_dir` (which must not exist).
pub async fn init_data_dir(binaries: &Binaries, data_dir: &Path) -> anyhow::Result<()> {
    let template = template(binaries).await?;
    let target = data_dir.to_owned();
    tokio::task::spawn_blocking(move || copy_dir(&template, &target))
        .await
        .context("copying the template data dir")?
        .with_context(|| format!("copying the template data dir to {}", data_dir.display()))
}

/// The template's data dir, building it if needed.
async fn template(binaries: &Binaries) -> anyhow::Result<PathBuf> {
    let root = std::env::temp_dir();
    let dir = root.join(format!(
        "hasip-mariadb-template-{:016x}",
        cache_key(binaries)
    ));
    let data = dir.join("data");
    if dir.join(COMPLETE).is_file() {
        return Ok(data);
    }
    let _guard = BUILD.lock().await;
    if dir.join(COMPLETE).is_file() {
        return Ok(data);
    }
    let staging = tempfile::Builder::new()
        .prefix("hasip-mariadb-template-build-")
        .tempdir_in(&root)
        .context("creating a directory for the template data dir")?;
    install_db(binaries, staging.path()).await?;
    std::fs::write(staging.path().join(COMPLETE), b"")?;
    // Another process may have won the race; its template is as good as ours,
    // and dropping `staging` removes ours (or nothing, once renamed).
    if std::fs::rename(staging.path(), &dir).is_err() && !dir.join(COMPLETE).is_file() {
        bail!("could not move the template data dir to {}", dir.display());
    }
    Ok(data)
}

async fn install_db(binaries: &Binaries, dir: &Path) -> anyhow::Result<()> {
    let tmp = dir.join("tmp");
    std::fs::create_dir_all(&tmp)?;
    let log = dir.join("install-db.log");
    let log_file = std::fs::File::create(&log)?;
    let status = tokio::process::Command::new(&binaries.install_db)
        // First, or my.cnf files (and the default instance's settings) are read.
        .arg("--no-defaults")
        .arg(format!("--datadir={}", dir.join("data").display()))
        // Private: parallel bootstraps sharing /tmp trip over each other's
        // temporary tables.
        .arg(format!("--tmpdir={}", tmp.display()))
        .args(shared_args())
        .args(INSTALL_ARGS)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        // No kill_on_drop: killing the script would orphan the bootstrap
        // server it runs; a dropped install simply finishes on its own.
        .status()
        .await
        .with_context(|| format!("running {}", binaries.install_db.display()))?;
    if !status.success() {
        bail!(
            "mariadb-install-db failed ({status})\n{}",
            log_tail(&log, 40)
        );
    }
    Ok(())
}

/// Names the template after what shapes it: the server build and the options.
fn cache_key(binaries: &Binaries) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    for program in [&binaries.mariadbd, &binaries.install_db] {
        program.hash(&mut hasher);
        if let Ok(meta) = std::fs::metadata(program) {
            meta.len().hash(&mut hasher);
            meta.modified().ok().hash(&mut hasher);
        }
    }
    shared_args().hash(&mut hasher);
    INSTALL_ARGS.hash(&mut hasher);
    hasher.finish()
}

/// Recursive copy of directories and regular files (all a data dir holds).
fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_dir_copies_the_tree() {
        let src = tempfile::tempdir().ok();
        let dst = tempfile::tempdir().ok();
        let (Some(src), Some(dst)) = (src, dst) else {
            panic!("no temp dirs");
        };
        let nested = src.path().join("mysql");
        assert!(std::fs::create_dir_all(&nested).is_ok());
        assert!(std::fs::write(nested.join("user.MAD"), b"rows").is_ok());
        assert!(std::fs::write(src.path().join("ibdata1"), b"pages").is_ok());
        let target = dst.path().join("data");
        assert!(copy_dir(src.path(), &target).is_ok());
        assert_eq!(
            std::fs::read(target.join("mysql/user.MAD")).ok(),
            Some(b"rows".to_vec())
        );
        assert_eq!(
            std::fs::read(target.join("ibdata1")).ok(),
            Some(b"pages".to_vec())
        );
    }
}
