//! Spin variables (`fermyon:spin/variables`): application variables, their providers, and the
//! `{{ name }}` templates that give each component its own variables.

use std::collections::BTreeMap;
use std::fmt;

use wasmtime::component::Linker;

use crate::app::{AppError, InstanceState};
use crate::bindings::fermyon::spin::variables::{self, Error as GuestError};
use crate::capability::{AppContext, Capability};
use crate::manifest::{Component, VariableDef};

/// A string with `{{ variable }}` placeholders, as used in component variables and
/// `allowed_outbound_hosts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Variable(String),
}

impl Template {
    /// Parses a template; `{{ name }}` must name a valid variable.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Literal(rest[..start].to_string()));
            }
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .ok_or_else(|| format!("unterminated `{{{{` in `{text}`"))?;
            let name = after[..end].trim();
            if !is_valid_name(name) {
                return Err(format!("`{name}` in `{text}` is not a valid variable name"));
            }
            parts.push(Part::Variable(name.to_string()));
            rest = &after[end + 2..];
        }
        if rest.contains("}}") {
            return Err(format!("unmatched `}}}}` in `{text}`"));
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_string()));
        }
        Ok(Self { parts })
    }

    /// The variables the template refers to.
    pub fn variables(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Variable(name) => Some(name.as_str()),
            Part::Literal(_) => None,
        })
    }

    /// Fills in the placeholders; the error names a variable without a value.
    pub fn render(&self, values: &AppVariables) -> Result<String, String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Variable(name) => match values.values.get(name) {
                    Some(value) => out.push_str(&value.value),
                    None => return Err(format!("variable `{name}` is not defined")),
                },
            }
        }
        Ok(out)
    }
}

/// Whether `name` is a valid Spin variable name: lowercase ASCII letters, digits and
/// underscores, starting with a letter.
pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// A resolved variable value; secrets never print their value.
#[derive(Clone)]
struct Value {
    value: String,
    secret: bool,
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.secret {
            f.write_str("<secret>")
        } else {
            fmt::Debug::fmt(&self.value, f)
        }
    }
}

/// Application variables with their values resolved from the providers, highest priority
/// first: explicit overrides (`vitrine up --variable`), the environment (`SPIN_VARIABLE_<NAME>`),
/// then the manifest default.
#[derive(Debug, Clone, Default)]
pub struct AppVariables {
    values: BTreeMap<String, Value>,
}

impl AppVariables {
    /// Resolves every declared variable; a required variable without a value is an error.
    pub fn resolve(
        defs: &BTreeMap<String, VariableDef>,
        overrides: &BTreeMap<String, String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, String> {
        if let Some(unknown) = overrides.keys().find(|k| !defs.contains_key(*k)) {
            return Err(format!(
                "variable `{unknown}` is set but not declared in [variables]"
            ));
        }
        let mut values = BTreeMap::new();
        for (name, def) in defs {
            let env_name = format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase());
            let value = overrides
                .get(name)
                .cloned()
                .or_else(|| env(&env_name))
                .or_else(|| def.default.clone());
            match value {
                Some(value) => {
                    values.insert(
                        name.clone(),
                        Value {
                            value,
                            secret: def.secret,
                        },
                    );
                }
                None => {
                    return Err(format!(
                        "required variable `{name}` has no value: set {env_name} or pass --variable {name}=VALUE"
                    ))
                }
            }
        }
        Ok(Self { values })
    }
}

/// The variables one component may read, rendered from its templates.
#[derive(Debug, Clone, Default)]
pub struct ComponentVariables {
    values: BTreeMap<String, Value>,
}

impl ComponentVariables {
    /// Renders a component's `variables` table against the application variables.
    pub fn render(
        templates: &BTreeMap<String, Template>,
        app: &AppVariables,
    ) -> Result<Self, String> {
        let mut values = BTreeMap::new();
        for (name, template) in templates {
            let secret = template
                .variables()
                .any(|v| app.values.get(v).is_some_and(|v| v.secret));
            let value = template
                .render(app)
                .map_err(|e| format!("variable `{name}`: {e}"))?;
            values.insert(name.clone(), Value { value, secret });
        }
        Ok(Self { values })
    }

    /// `fermyon:spin/variables.get`, with Spin's error cases.
    fn get(&self, name: &str) -> Result<String, GuestError> {
        if !is_valid_name(name) {
            return Err(GuestError::InvalidName(format!(
                "`{name}` is not a valid variable name"
            )));
        }
        self.values
            .get(name)
            .map(|v| v.value.clone())
            .ok_or_else(|| {
                GuestError::Undefined(format!("no variable `{name}` for this component"))
            })
    }
}

/// The `fermyon:spin/variables` capability: each component reads its own `variables`,
/// rendered from the application variables.
pub struct Variables;

impl Capability for Variables {
    type Component = ComponentVariables;

    fn configure_app(_cx: &AppContext<'_>) -> Result<Self, AppError> {
        Ok(Variables)
    }

    fn configure_component(
        &self,
        component: &Component,
        cx: &AppContext<'_>,
    ) -> Result<ComponentVariables, String> {
        ComponentVariables::render(&component.variables, cx.variables)
    }

    fn add_to_linker(linker: &mut Linker<InstanceState>) -> wasmtime::Result<()> {
        fn view(s: &mut InstanceState) -> &ComponentVariables {
            s.parts::<Variables>().component
        }
        variables::add_to_linker::<_, VariablesHost>(linker, view)
    }
}

/// Marks `&ComponentVariables` as the data the generated bindings work on.
pub struct VariablesHost;

impl wasmtime::component::HasData for VariablesHost {
    type Data<'a> = &'a ComponentVariables;
}

impl variables::Host for &ComponentVariables {
    async fn get(&mut self, name: String) -> wasmtime::Result<Result<String, GuestError>> {
        Ok(ComponentVariables::get(self, &name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defs(items: &[(&str, Option<&str>, bool)]) -> BTreeMap<String, VariableDef> {
        items
            .iter()
            .map(|(name, default, secret)| {
                (
                    name.to_string(),
                    VariableDef {
                        default: default.map(str::to_string),
                        required: default.is_none(),
                        secret: *secret,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn providers_apply_in_priority_order() {
        let defs = defs(&[
            ("a", Some("default"), false),
            ("b", Some("default"), false),
            ("c", None, true),
        ]);
        let overrides = BTreeMap::from([("a".to_string(), "override".to_string())]);
        let env =
            |k: &str| (k == "SPIN_VARIABLE_A" || k == "SPIN_VARIABLE_C").then(|| "env".to_string());
        let app = AppVariables::resolve(&defs, &overrides, env).unwrap();
        let templates = BTreeMap::from([
            ("x".to_string(), Template::parse("{{ a }}/{{b}}").unwrap()),
            ("s".to_string(), Template::parse("key={{ c }}").unwrap()),
        ]);
        let vars = ComponentVariables::render(&templates, &app).unwrap();
        assert_eq!(vars.get("x").unwrap(), "override/default");
        assert_eq!(vars.get("s").unwrap(), "key=env");
        assert!(
            !format!("{vars:?}").contains("key=env"),
            "secrets must not print"
        );
        assert!(matches!(vars.get("nope"), Err(GuestError::Undefined(_))));
        assert!(matches!(
            vars.get("Bad-Name"),
            Err(GuestError::InvalidName(_))
        ));
    }

    #[test]
    fn required_variable_without_value_is_an_error() {
        let err =
            AppVariables::resolve(&defs(&[("api_key", None, true)]), &BTreeMap::new(), |_| {
                None
            })
            .unwrap_err();
        assert!(
            err.contains("api_key") && err.contains("SPIN_VARIABLE_API_KEY"),
            "{err}"
        );
    }

    #[test]
    fn templates_reject_bad_syntax() {
        assert!(Template::parse("{{ a ").is_err());
        assert!(Template::parse("{{ A }}").is_err());
        assert!(Template::parse("a }}").is_err());
        let t = Template::parse("http://{{ host }}:{{port}}").unwrap();
        assert_eq!(t.variables().collect::<Vec<_>>(), ["host", "port"]);
    }
}
