//! What of each stored resource goes into the file: `_typeFilter` decides
//! whether it does, `_elements` which of its elements, and
//! `LatestProvenanceResources` which Provenance.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use bulk_core::{AssociatedData, ExportRequest, ResourceType};
use bulk_resources::{ResourceQuery, StoredResource};
use serde_json::Value;

use crate::{JobError, Worker};

/// Shapes the resources of one type for one request.
pub(crate) struct Shaper<'a> {
    request: &'a ExportRequest,
    resource_type: ResourceType,
    filtered: bool,
    projected: bool,
    /// When set, only Provenance with these ids are exported.
    only: Option<HashSet<String>>,
}

impl<'a> Shaper<'a> {
    pub fn new(request: &'a ExportRequest, resource_type: ResourceType, only: Option<HashSet<String>>) -> Self {
        let filtered = request.filters_for(resource_type).next().is_some();
        let projected = request.elements.iter().any(|e| e.resource_type.is_none_or(|t| t == resource_type));
        Shaper { request, resource_type, filtered, projected, only }
    }

    /// The line to write for `r`, or `None` when it is not exported. The
    /// stored JSON is written as is unless `_elements` cuts it, and parsed
    /// only when a filter or a projection needs it.
    pub fn shape<'r>(&self, r: &'r StoredResource) -> Option<Cow<'r, str>> {
        if self.only.as_ref().is_some_and(|only| !only.contains(&r.id)) {
            return None;
        }
        if !self.filtered && !self.projected {
            return Some(Cow::Borrowed(&r.json));
        }
        let mut value: Value = serde_json::from_str(&r.json).ok()?;
        if self.filtered && !self.request.passes_filters(self.resource_type, &value) {
            return None;
        }
        if !self.projected {
            return Some(Cow::Borrowed(&r.json));
        }
        bulk_core::elements::project(&mut value, &self.request.elements);
        Some(Cow::Owned(value.to_string()))
    }
}

impl Worker {
    /// For `includeAssociatedData=LatestProvenanceResources` alone, the ids of
    /// the latest Provenance of each target in scope; `None` keeps every one.
    pub(crate) async fn latest_provenance_only(
        &self,
        request: &ExportRequest,
        t: ResourceType,
        q: &ResourceQuery,
    ) -> Result<Option<HashSet<String>>, JobError> {
        let latest_only = request.include_associated.contains(&AssociatedData::LatestProvenanceResources)
            && !request.include_associated.contains(&AssociatedData::RelevantProvenanceResources);
        if t != ResourceType::PROVENANCE || !latest_only {
            return Ok(None);
        }
        let mut latest = LatestProvenance::default();
        let mut after: Option<String> = None;
        loop {
            let page = self
                .resources
                .page(q, after.as_deref(), self.config.page_size)
                .await
                .map_err(|source| JobError::Resources { resource_type: q.resource_type.clone(), source })?;
            let Some(last) = page.last() else { break };
            after = Some(last.id.clone());
            page.iter().for_each(|r| latest.see(r));
            if page.len() < self.config.page_size as usize {
                break;
            }
        }
        Ok(Some(latest.ids()))
    }
}

/// Picks, for `LatestProvenanceResources`, the most recent Provenance of each
/// target: fed every Provenance in the export's scope, it keeps one
/// (recorded, id) per target reference, so its memory grows with the
/// number of targets, not with the Provenance resources.
#[derive(Default)]
pub(crate) struct LatestProvenance {
    by_target: HashMap<String, (String, String)>,
}

impl LatestProvenance {
    /// Takes one Provenance into account.
    pub fn see(&mut self, r: &StoredResource) {
        let Ok(value) = serde_json::from_str::<Value>(&r.json) else { return };
        // `recorded` is an instant; same-offset instants compare as text. Ties go to the larger id.
        let recorded = value.get("recorded").and_then(Value::as_str).unwrap_or("").to_owned();
        let targets = value.get("target").and_then(Value::as_array).into_iter().flatten();
        for reference in targets.filter_map(|t| t.get("reference").and_then(Value::as_str)) {
            let candidate = (recorded.clone(), r.id.clone());
            let entry = self.by_target.entry(reference.to_owned()).or_insert_with(|| candidate.clone());
            if candidate > *entry {
                *entry = candidate;
            }
        }
    }

    /// The ids of the Provenance that are the latest of at least one target.
    pub fn ids(self) -> HashSet<String> {
        self.by_target.into_values().map(|(_, id)| id).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(id: &str, json: Value) -> StoredResource {
        StoredResource { id: id.into(), json: json.to_string() }
    }

    #[test]
    fn filters_decide_what_is_written_and_elements_what_of_it_while_untouched_json_stays_byte_exact() {
        let mut request = ExportRequest::new(bulk_core::ExportLevel::System, vec![ResourceType::PATIENT], "");
        request.type_filters = vec![bulk_core::TypeFilter::parse("Patient?gender=female").expect("filter")];
        let woman = stored(
            "w",
            serde_json::json!({"resourceType": "Patient", "id": "w", "gender": "female", "birthDate": "1990-01-01"}),
        );
        let man = stored("m", serde_json::json!({"resourceType": "Patient", "id": "m", "gender": "male"}));
        let shaper = Shaper::new(&request, ResourceType::PATIENT, None);
        assert!(matches!(shaper.shape(&woman), Some(Cow::Borrowed(s)) if s == woman.json));
        assert!(shaper.shape(&man).is_none());

        request.elements = vec!["gender".parse().expect("element")];
        let shaper = Shaper::new(&request, ResourceType::PATIENT, None);
        let line: Value = serde_json::from_str(&shaper.shape(&woman).expect("kept")).expect("JSON");
        assert!(line.get("birthDate").is_none() && line["gender"] == "female");
        assert!(line["meta"]["tag"].to_string().contains("SUBSETTED"));
    }

    #[test]
    fn only_the_chosen_provenance_ids_pass() {
        let request = ExportRequest::new(bulk_core::ExportLevel::System, vec![ResourceType::PROVENANCE], "");
        let shaper = Shaper::new(&request, ResourceType::PROVENANCE, Some(HashSet::from(["a".to_owned()])));
        assert!(shaper.shape(&stored("a", serde_json::json!({"resourceType": "Provenance"}))).is_some());
        assert!(shaper.shape(&stored("b", serde_json::json!({"resourceType": "Provenance"}))).is_none());
    }

    #[test]
    fn the_latest_provenance_of_each_target_is_kept_and_older_ones_dropped() {
        let mut latest = LatestProvenance::default();
        let t = |r: &str| serde_json::json!({"reference": r});
        latest.see(&stored(
            "old",
            serde_json::json!({"recorded": "2020-01-01T00:00:00Z", "target": [t("Observation/o1")]}),
        ));
        latest.see(&stored(
            "new",
            serde_json::json!({"recorded": "2021-01-01T00:00:00Z", "target": [t("Observation/o1")]}),
        ));
        latest.see(&stored("other", serde_json::json!({"recorded": "2019-01-01T00:00:00Z", "target": [t("Observation/o2"), t("Observation/o1")]})));
        assert_eq!(latest.ids(), HashSet::from(["new".to_owned(), "other".to_owned()]));
    }
}
