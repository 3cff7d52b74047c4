"""The REST API, versioned under /api/v1/, and its schema and docs."""

from csp.constants import SELF, UNSAFE_INLINE
from csp.decorators import csp_replace
from django.urls import include, path, re_path
from drf_spectacular.utils import extend_schema, extend_schema_view
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from feedbackloop.api_errors import api_not_found
from generation import apis as generation_apis
from improvements import apis as improvement_apis
from pipelines import apis as pipeline_apis
from reviews import apis as review_apis
from reviews import submission_fast_path as review_fast_path


def as_operation(view_class, method: str, operation_id: str):
    """One view served under a second route with its own operationId: the schema needs one id
    per route (the default pipeline's short routes and the general /pipelines/{slug}/ ones)."""
    renamed = type(f"{view_class.__name__}As_{operation_id}", (view_class,), {})
    return extend_schema_view(**{method: extend_schema(operation_id=operation_id)})(
        renamed
    ).as_view()


# Ids are matched as plain strings so that a malformed id is a JSON 404 from the view, not
# Django's HTML page.
v1 = [
    path(
        "config/",
        as_operation(pipeline_apis.PipelineConfigApi, "get", "config_get"),
        name="config",
    ),
    path("pipelines/", pipeline_apis.PipelinesApi.as_view(), name="pipelines"),
    path("pipelines/<str:slug>/", pipeline_apis.PipelineApi.as_view(), name="pipeline"),
    path(
        "pipelines/<str:slug>/config/",
        pipeline_apis.PipelineConfigApi.as_view(),
        name="pipeline-config",
    ),
    path("jobs/claim/", generation_apis.JobClaimApi.as_view(), name="job-claim"),
    path(
        "jobs/<str:generation_id>/heartbeat/",
        generation_apis.JobHeartbeatApi.as_view(),
        name="job-heartbeat",
    ),
    path(
        "jobs/<str:generation_id>/complete/",
        generation_apis.JobCompleteApi.as_view(),
        name="job-complete",
    ),
    path("jobs/<str:generation_id>/fail/", generation_apis.JobFailApi.as_view(), name="job-fail"),
    path(
        "jobs/<str:generation_id>/upload-url/",
        generation_apis.JobUploadUrlApi.as_view(),
        name="job-upload-url",
    ),
    path("generations/", generation_apis.GenerationsApi.as_view(), name="generations"),
    path(
        "generations/<str:generation_id>/",
        generation_apis.GenerationDetailApi.as_view(),
        name="generation-detail",
    ),
    path(
        "generations/<str:generation_id>/metrics/",
        generation_apis.GenerationMetricsApi.as_view(),
        name="generation-metrics",
    ),
    path(
        "generations/<str:generation_id>/feedback/",
        review_fast_path.feedback_create,
        name="generation-feedback",
    ),
    path("feedback/summary/", review_apis.FeedbackSummaryApi.as_view(), name="feedback-summary"),
    path("improvements/", improvement_apis.ImprovementLogApi.as_view(), name="improvements"),
    path(
        "revisions/<str:number>/approve/",
        improvement_apis.RevisionApproveApi.as_view(),
        name="revision-approve",
    ),
    path(
        "revisions/<str:number>/reject/",
        improvement_apis.RevisionRejectApi.as_view(),
        name="revision-reject",
    ),
    path(
        "revisions/<str:number>/rollback/",
        improvement_apis.RevisionRollbackApi.as_view(),
        name="revision-rollback",
    ),
    path(
        "experiments/current/",
        improvement_apis.ExperimentCurrentApi.as_view(),
        name="experiment-current",
    ),
    # The same operations for any pipeline (the routes above are the default pipeline's).
    path(
        "pipelines/<str:slug>/revisions/<str:number>/approve/",
        as_operation(improvement_apis.RevisionApproveApi, "post", "pipeline_revision_approve"),
        name="pipeline-revision-approve",
    ),
    path(
        "pipelines/<str:slug>/revisions/<str:number>/reject/",
        as_operation(improvement_apis.RevisionRejectApi, "post", "pipeline_revision_reject"),
        name="pipeline-revision-reject",
    ),
    path(
        "pipelines/<str:slug>/revisions/<str:number>/rollback/",
        as_operation(improvement_apis.RevisionRollbackApi, "post", "pipeline_revision_rollback"),
        name="pipeline-revision-rollback",
    ),
    path(
        "pipelines/<str:slug>/experiments/current/",
        as_operation(improvement_apis.ExperimentCurrentApi, "get", "pipeline_experiment_current"),
        name="pipeline-experiment-current",
    ),
    path(
        "pipelines/<str:slug>/proposals/approve/",
        improvement_apis.ProposalsApproveApi.as_view(),
        name="pipeline-proposals-approve",
    ),
    path("", include("integrations.api_urls")),
]

app_name = "api"
urlpatterns = [
    path("v1/", include((v1, "v1"))),
    path("schema/", SpectacularAPIView.as_view(schema=None), name="schema"),
    # Swagger UI's script comes from /api/docs/?script (no inline script); the UI sets inline
    # styles and draws its icons from data: URIs, which only this page allows.
    path(
        "docs/",
        csp_replace({"style-src": [SELF, UNSAFE_INLINE], "img-src": [SELF, "data:"]})(
            SpectacularSwaggerSplitView.as_view(url_name="api:schema")
        ),
        name="docs",
    ),
    re_path(r"^.*$", api_not_found),
]
