//! Path helpers that compare by components, never as strings
//! (`"/home/a".starts_with("/home/a")` would also match `/home/ab`).

use std::path::{Component, Path, PathBuf};

/// Lexically normalizes an absolute path: drops `.`, resolves `..`, never touches the disk.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for component in path.components() {
        match component {
            Component::Normal(name) => out.push(name),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// True when `ancestor` is `path` itself or one of its parents, compared by components.
pub fn is_ancestor_or_same(ancestor: &Path, path: &Path) -> bool {
    path.starts_with(ancestor)
}

/// Number of normal components: `/` is 0, `/home` is 1, `/home/a` is 2.
pub fn depth(path: &Path) -> usize {
    path.components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ancestor_compares_components_not_strings() {
        assert!(is_ancestor_or_same(
            Path::new("/home/a"),
            Path::new("/home/a/x")
        ));
        assert!(is_ancestor_or_same(
            Path::new("/home/a"),
            Path::new("/home/a")
        ));
        assert!(!is_ancestor_or_same(
            Path::new("/home/a"),
            Path::new("/home/ab")
        ));
        assert!(is_ancestor_or_same(Path::new("/"), Path::new("/home")));
    }

    #[test]
    fn normalize_resolves_dots_lexically() {
        assert_eq!(normalize(Path::new("/a/./b/../c/")), PathBuf::from("/a/c"));
        assert_eq!(normalize(Path::new("/../..")), PathBuf::from("/"));
    }

    #[test]
    fn depth_counts_components() {
        assert_eq!(depth(Path::new("/")), 0);
        assert_eq!(depth(Path::new("/home/a")), 2);
    }
}
