// The bundled UI (ui/dist) is compiled into the binary: it must be built first.
fn main() {
    // Read at run time: a build-script binary compiled for one checkout may be reused by
    // cargo for another checkout that shares the target directory.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let dist = std::path::Path::new(&manifest_dir).join("../ui/dist/index.html");
    if !dist.is_file() {
        panic!(
            "the desktop UI is not built ({} is missing): run `scripts/desktop-deps && npm --prefix ui run build` (scripts/test does)",
            dist.display()
        );
    }
    tauri_build::build()
}
