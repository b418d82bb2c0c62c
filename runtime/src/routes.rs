//! HTTP trigger routes: parsing Spin route patterns and picking the most specific match.
//!
//! A route is `/` followed by segments; a segment is a literal, a `:name` parameter matching one
//! segment, or — as the last segment only — the trailing wildcard `...` matching any rest.

use std::cmp::Ordering;

/// A parsed route pattern from a `[[trigger.http]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePattern {
    raw: String,
    segments: Vec<Segment>,
    wildcard: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

impl Segment {
    /// Literal segments are more specific than parameters.
    fn rank(&self) -> u8 {
        match self {
            Segment::Literal(_) => 2,
            Segment::Param(_) => 1,
        }
    }
}

/// What a request path matched: the route and the values it captured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    /// The `:name` segments and the path segments they matched, in route order.
    pub params: Vec<(String, String)>,
    /// The part of the path matched by a trailing `/...` (with its leading `/`), else empty.
    pub path_info: String,
}

impl RoutePattern {
    /// Parses a route such as `/users/:id/edit` or `/static/...`.
    pub fn parse(route: &str) -> Result<Self, String> {
        if !route.starts_with('/') {
            return Err(format!("route `{route}` must start with `/`"));
        }
        let mut segments = Vec::new();
        let mut wildcard = false;
        let parts: Vec<&str> = route[1..].split('/').collect();
        for (i, part) in parts.iter().enumerate() {
            let last = i + 1 == parts.len();
            if part.is_empty() {
                // "/" alone, or a trailing slash, adds no segment.
                if last {
                    continue;
                }
                return Err(format!("route `{route}` has an empty segment"));
            }
            if *part == "..." {
                if !last {
                    return Err(format!(
                        "route `{route}`: the wildcard `...` may only be the last segment"
                    ));
                }
                wildcard = true;
            } else if let Some(name) = part.strip_prefix(':') {
                if name.is_empty()
                    || !name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                {
                    return Err(format!(
                        "route `{route}`: parameter `{part}` needs a name of letters, digits, `_` or `-`"
                    ));
                }
                if segments
                    .iter()
                    .any(|s| matches!(s, Segment::Param(n) if n == name))
                {
                    return Err(format!(
                        "route `{route}`: parameter `:{name}` appears twice"
                    ));
                }
                segments.push(Segment::Param(name.to_string()));
            } else if part.contains("...") {
                return Err(format!(
                    "route `{route}`: `...` must be a whole segment at the end"
                ));
            } else {
                segments.push(Segment::Literal(part.to_string()));
            }
        }
        Ok(Self {
            raw: route.to_string(),
            segments,
            wildcard,
        })
    }

    /// The route as written in the manifest.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The route without its trailing wildcard (`/static/...` → `/static`).
    pub fn prefix(&self) -> &str {
        if self.wildcard {
            self.raw.strip_suffix("/...").unwrap_or("")
        } else {
            &self.raw
        }
    }

    /// Whether two patterns match exactly the same paths (parameter names aside).
    pub fn same_shape(&self, other: &Self) -> bool {
        self.wildcard == other.wildcard
            && self.segments.len() == other.segments.len()
            && self
                .segments
                .iter()
                .zip(&other.segments)
                .all(|(a, b)| match (a, b) {
                    (Segment::Literal(x), Segment::Literal(y)) => x == y,
                    (Segment::Param(_), Segment::Param(_)) => true,
                    _ => false,
                })
    }

    /// Matches a request path (without query).
    pub fn matches(&self, path: &str) -> Option<RouteMatch> {
        // `rest` keeps its leading `/`, so a trailing slash survives into the path info.
        let mut rest = path;
        if !rest.starts_with('/') {
            return None;
        }
        let mut params = Vec::new();
        for segment in &self.segments {
            let body = rest.strip_prefix('/')?;
            let (head, tail) = body.find('/').map_or((body, ""), |i| body.split_at(i));
            if head.is_empty() {
                return None;
            }
            match segment {
                Segment::Literal(lit) if lit == head => {}
                Segment::Literal(_) => return None,
                Segment::Param(name) => params.push((name.clone(), head.to_string())),
            }
            rest = tail;
        }
        // As in Spin: `/shop/...` gives `` for `/shop`, `/` for `/shop/`, `/a/` for `/shop/a/`;
        // an exact route also matches its path with one trailing slash.
        let path_info = match (self.wildcard, rest) {
            (true, rest) => rest.to_string(),
            (false, "" | "/") => String::new(),
            (false, _) => return None,
        };
        Some(RouteMatch { params, path_info })
    }

    /// Orders two patterns by specificity: `Greater` means `self` wins over `other`.
    fn specificity(&self, other: &Self) -> Ordering {
        for (a, b) in self.segments.iter().zip(&other.segments) {
            match a.rank().cmp(&b.rank()) {
                Ordering::Equal => {}
                unequal => return unequal,
            }
        }
        // Same ranks over the common part: more segments win, and among routes of the same
        // length an exact route beats a trailing wildcard.
        self.segments
            .len()
            .cmp(&other.segments.len())
            .then_with(|| other.wildcard.cmp(&self.wildcard))
    }
}

/// Routes requests to targets (component ids), most specific route first.
#[derive(Debug, Clone)]
pub struct Router<T> {
    routes: Vec<(RoutePattern, T)>,
}

impl<T> Router<T> {
    /// Builds a router; fails on two routes that match exactly the same paths.
    pub fn new(routes: Vec<(RoutePattern, T)>) -> Result<Self, String> {
        for (i, (a, _)) in routes.iter().enumerate() {
            if let Some((b, _)) = routes[i + 1..].iter().find(|(b, _)| a.same_shape(b)) {
                return Err(if a.raw == b.raw {
                    format!("duplicate route `{}`", a.raw)
                } else {
                    format!(
                        "routes `{}` and `{}` conflict: they match the same paths",
                        a.raw, b.raw
                    )
                });
            }
        }
        let mut routes = routes;
        routes.sort_by(|(a, _), (b, _)| b.specificity(a));
        Ok(Self { routes })
    }

    /// Finds the most specific route matching `path`.
    pub fn route(&self, path: &str) -> Option<(&RoutePattern, &T, RouteMatch)> {
        self.routes
            .iter()
            .find_map(|(pattern, target)| pattern.matches(path).map(|m| (pattern, target, m)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(routes: &[&str]) -> Router<String> {
        Router::new(
            routes
                .iter()
                .map(|r| (RoutePattern::parse(r).unwrap(), r.to_string()))
                .collect(),
        )
        .unwrap()
    }

    fn target(router: &Router<String>, path: &str) -> Option<String> {
        router.route(path).map(|(_, t, _)| t.clone())
    }

    #[test]
    fn exact_routes_match_only_themselves() {
        let r = router(&["/cart", "/cart/checkout"]);
        assert_eq!(target(&r, "/cart").as_deref(), Some("/cart"));
        assert_eq!(target(&r, "/cart/").as_deref(), Some("/cart"));
        assert_eq!(
            target(&r, "/cart/checkout").as_deref(),
            Some("/cart/checkout")
        );
        assert_eq!(target(&r, "/cart/other"), None);
        assert_eq!(target(&r, "/"), None);
    }

    #[test]
    fn most_specific_route_wins() {
        let r = router(&[
            "/...",
            "/users/...",
            "/users/:id",
            "/users/admin",
            "/users/:id/...",
        ]);
        assert_eq!(target(&r, "/x").as_deref(), Some("/..."));
        assert_eq!(target(&r, "/users").as_deref(), Some("/users/..."));
        assert_eq!(target(&r, "/users/admin").as_deref(), Some("/users/admin"));
        assert_eq!(target(&r, "/users/7").as_deref(), Some("/users/:id"));
        assert_eq!(
            target(&r, "/users/7/edit").as_deref(),
            Some("/users/:id/...")
        );
    }

    #[test]
    fn captures_params_and_path_info() {
        let p = RoutePattern::parse("/shop/:cat/items/...").unwrap();
        let m = p.matches("/shop/dresses/items/a/b").unwrap();
        assert_eq!(m.params, vec![("cat".to_string(), "dresses".to_string())]);
        assert_eq!(m.path_info, "/a/b");
        assert_eq!(p.matches("/shop/dresses/items").unwrap().path_info, "");
        // Trailing slashes are kept, as Spin keeps them.
        assert_eq!(p.matches("/shop/dresses/items/").unwrap().path_info, "/");
        assert_eq!(
            p.matches("/shop/dresses/items/a/").unwrap().path_info,
            "/a/"
        );
        let all = RoutePattern::parse("/...").unwrap();
        assert_eq!(all.matches("/").unwrap().path_info, "/");
        assert_eq!(all.matches("/x/y").unwrap().path_info, "/x/y");
        assert!(p.matches("/shop/dresses").is_none());
        assert_eq!(p.prefix(), "/shop/:cat/items");
    }

    #[test]
    fn conflicting_routes_are_rejected() {
        let dup = |a: &str, b: &str| {
            Router::new(vec![
                (RoutePattern::parse(a).unwrap(), ()),
                (RoutePattern::parse(b).unwrap(), ()),
            ])
            .is_err()
        };
        assert!(dup("/a", "/a"));
        assert!(dup("/a/:x", "/a/:y"));
        assert!(!dup("/a/...", "/a"));
        assert!(!dup("/a/:x", "/a/b"));
    }

    #[test]
    fn bad_routes_are_rejected() {
        assert!(RoutePattern::parse("cart").is_err());
        assert!(RoutePattern::parse("/a/.../b").is_err());
        assert!(RoutePattern::parse("/a//b").is_err());
        assert!(RoutePattern::parse("/a/:").is_err());
        assert!(RoutePattern::parse("/a/:x/:x").is_err());
    }
}
