//! Real photographs for measuring enhancement, from packages on the Python package index
//! (pinned wheels, checked by sha256): scikit-image's sample photographs and matplotlib's
//! portrait of Grace Hopper. Kept in a cache folder after the first fetch.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use vitrine_worker::pypi::{self, Package};

/// scikit-image 0.26.0's photographs (astronaut and rocket: NASA, public domain; chelsea and
/// coffee: CC0; motorcycle: Middlebury stereo data set).
const SCIKIT_IMAGE: Package = Package {
    project: "scikit-image",
    version: "0.26.0",
    wheel: "scikit_image-0.26.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl",
    sha256: "74aa5518ccea28121f57a95374581d3b979839adc25bb03f289b1bc9b99c58af",
    files: &[
        ("skimage/data/astronaut.png", "astronaut.png"),
        ("skimage/data/chelsea.png", "chelsea.png"),
        ("skimage/data/coffee.png", "coffee.png"),
        ("skimage/data/rocket.jpg", "rocket.jpg"),
        ("skimage/data/motorcycle_left.png", "motorcycle_left.png"),
    ],
    unpack: pypi::copy_files,
};

/// matplotlib 3.11.2's `grace_hopper.jpg` (public domain).
const MATPLOTLIB: Package = Package {
    project: "matplotlib",
    version: "3.11.2",
    wheel: "matplotlib-3.11.2-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.whl",
    sha256: "07d9b9fa60cd4c393692f50d0bb03123242ddf61c99bb0e95e75feb354e7c1a8",
    files: &[(
        "matplotlib/mpl-data/sample_data/grace_hopper.jpg",
        "grace_hopper.jpg",
    )],
    unpack: pypi::copy_files,
};

/// The photographs' files under `cache` (`photos-<project>-<version>/…`), fetched first if
/// missing; `progress(project, bytes so far, total)` follows the downloads.
pub fn fetch(cache: &Path, mut progress: impl FnMut(&str, u64, u64)) -> Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    for package in [&MATPLOTLIB, &SCIKIT_IMAGE] {
        let dir = cache.join(format!("photos-{}-{}", package.project, package.version));
        if !dir.exists() {
            let (name, wheel) = pypi::download(&pypi::index_url(), package, |done, total| {
                progress(package.project, done, total)
            })
            .with_context(|| format!("cannot fetch {} {}", package.project, package.version))?;
            let staging = cache.join(format!(".staging-{}", package.project));
            let _ = std::fs::remove_dir_all(&staging);
            std::fs::create_dir_all(&staging)?;
            (package.unpack)(&pypi::extract(&name, &wheel, package.files)?, &staging)
                .map_err(|e| anyhow::anyhow!("cannot write the photographs: {e}"))?;
            std::fs::rename(&staging, &dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        paths.extend(package.files.iter().map(|(_, name)| dir.join(name)));
    }
    Ok(paths)
}
