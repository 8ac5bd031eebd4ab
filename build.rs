//! Compiles the C kernels in csrc/. Each ISA file is compiled alone with only its own
//! flags (the file boundary is the compile-flag boundary), so code from avx512.c can never
//! leak into the scalar path. Never -march=native: the binary must run on any CPU of the
//! target architecture, and dispatch picks the ISA at run time.

/// One compilation unit: static library name, source, its own flags, its defines.
struct Unit {
    lib: &'static str,
    file: &'static str,
    flags: Vec<&'static str>,
    defines: Vec<(&'static str, &'static str)>,
}

fn main() {
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    println!("cargo:rerun-if-changed=csrc");
    build_info();

    let mut files = vec![unit("lode_kernels_scalar", "csrc/scalar.c", vec![], vec![])];
    match arch.as_str() {
        "x86_64" => {
            files.push(unit(
                "lode_kernels_avx2",
                "csrc/avx2.c",
                vec!["-mavx2", "-mfma", "-mf16c"],
                vec![],
            ));
            files.push(unit(
                "lode_kernels_avx512",
                "csrc/avx512.c",
                vec![
                    "-mavx512f",
                    "-mavx512bw",
                    "-mavx512vl",
                    "-mavx512vnni",
                    "-mavx512dq",
                    "-mavx2",
                    "-mfma",
                    "-mf16c",
                ],
                vec![],
            ));
        }
        "aarch64" => {
            files.push(unit(
                "lode_kernels_neon",
                "csrc/neon.c",
                vec![],
                vec![("LODE_SUFFIX", "neon")],
            ));
            files.push(unit(
                "lode_kernels_neon_dotprod",
                "csrc/neon.c",
                vec!["-march=armv8.2-a+dotprod"],
                vec![("LODE_SUFFIX", "neon_dotprod")],
            ));
        }
        _ => {}
    }

    for Unit {
        lib,
        file,
        flags,
        defines,
    } in files
    {
        let mut b = cc::Build::new();
        b.file(file)
            .include("csrc")
            .opt_level(3)
            .flag_if_supported("-std=c11")
            // clang contracts a * b + c into an FMA even in ISO C mode (GCC does not), which
            // changed ggml_dot_f32's tail against the scalar reference (kernel_test, CC=clang)
            .flag_if_supported("-ffp-contract=off")
            .warnings(true)
            .extra_warnings(true);
        for f in flags {
            b.flag(f);
        }
        for (k, v) in defines {
            b.define(k, v);
        }
        b.compile(lib);
    }
}

fn unit(
    lib: &'static str,
    file: &'static str,
    flags: Vec<&'static str>,
    defines: Vec<(&'static str, &'static str)>,
) -> Unit {
    Unit {
        lib,
        file,
        flags,
        defines,
    }
}

/// `LODE_BUILD_COMMIT` (the short commit, for `--version` and bench JSON) and
/// `LODE_BUILD_PROFILE`. Outside a git checkout (a source tarball) the commit comes from the
/// `LODE_BUILD_COMMIT` environment variable, else it is `unknown`.
fn build_info() {
    println!("cargo:rerun-if-env-changed=LODE_BUILD_COMMIT");
    let git = |args: &[&str]| -> Option<String> {
        let out = std::process::Command::new("git").args(args).output().ok()?;
        let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
        (out.status.success() && !s.is_empty()).then_some(s)
    };
    let commit = std::env::var("LODE_BUILD_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| git(&["rev-parse", "--short=10", "HEAD"]));
    // Rebuild when HEAD moves: HEAD itself (a checkout) and the branch it names (a commit).
    if let (Some(dir), Some(common)) = (
        git(&["rev-parse", "--absolute-git-dir"]),
        git(&["rev-parse", "--path-format=absolute", "--git-common-dir"]),
    ) {
        // (only files that exist: a missing one would rerun this script on every build)
        let mut watch = vec![format!("{dir}/HEAD"), format!("{common}/packed-refs")];
        if let Some(r) = git(&["symbolic-ref", "-q", "HEAD"]) {
            watch.push(format!("{common}/{r}"));
        }
        for f in watch.iter().filter(|f| std::path::Path::new(f).exists()) {
            println!("cargo:rerun-if-changed={f}");
        }
    }
    println!(
        "cargo:rustc-env=LODE_BUILD_COMMIT={}",
        commit.unwrap_or_else(|| "unknown".into())
    );
    let profile = std::env::var("PROFILE").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=LODE_BUILD_PROFILE={profile}");
}
