//! The key-encryption key in the OS keyring (Secret Service on Linux,
//! Keychain on macOS, Credential Manager on Windows), via the `keyring`
//! crate. Only a random 32-byte KEK is stored there, never the data key.
//! Where there is no keyring (a headless Linux box has no Secret Service)
//! every call fails with a reason and the caller falls back to a passphrase.

use super::KEY_LEN;

const SERVICE: &str = "tresor";

fn entry(name: &str) -> Result<keyring::Entry, String> {
    keyring::Entry::new(SERVICE, name).map_err(|e| e.to_string())
}

/// Stores `kek` under `name` and reads it back; an error means "no usable keyring here".
pub(crate) fn store(name: &str, kek: &[u8; KEY_LEN]) -> Result<(), String> {
    if std::env::var_os("TRESOR_NO_KEYRING").is_some() {
        return Err("disabled by TRESOR_NO_KEYRING".into());
    }
    let e = entry(name)?;
    e.set_secret(kek).map_err(|e| e.to_string())?;
    match e.get_secret() {
        Ok(back) if back.as_slice() == kek.as_slice() => Ok(()),
        Ok(_) => {
            let _ = e.delete_credential();
            Err("the keyring returned a different secret".into())
        }
        Err(err) => {
            let _ = e.delete_credential();
            Err(err.to_string())
        }
    }
}

/// Reads the KEK stored under `name`.
pub(crate) fn load(name: &str) -> Result<zeroize::Zeroizing<[u8; KEY_LEN]>, String> {
    let s = zeroize::Zeroizing::new(entry(name)?.get_secret().map_err(|e| e.to_string())?);
    let arr: [u8; KEY_LEN] = s.as_slice().try_into().map_err(|_| format!("keyring entry holds {} bytes, expected {KEY_LEN}", s.len()))?;
    Ok(zeroize::Zeroizing::new(arr))
}

/// Removes the entry (after a switch to a passphrase); errors are ignored.
pub(crate) fn delete(name: &str) {
    if let Ok(e) = entry(name) {
        let _ = e.delete_credential();
    }
}
