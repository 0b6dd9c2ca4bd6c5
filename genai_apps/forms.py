"""Forms for GenAI applications and for attaching keys to them."""

from django import forms

from genai_apps.models import APPLICATION_NAME_MAX_LENGTH, GenAIApplication
from workspace.forms import FieldMessagesMixin, KeySearchForm
from workspace.ids import MAX_ID
from workspace.models import APIKey, KeyStatus
from workspace.names import find_same_name, validate_visible_name


class ApplicationForm(FieldMessagesMixin, forms.ModelForm):
    class Meta:
        model = GenAIApplication
        fields = ["name", "description"]
        help_texts = {
            "name": f"At most {APPLICATION_NAME_MAX_LENGTH} characters; unique in "
            "the project, without regard to case.",
        }
        error_messages = {
            "name": {
                "required": "Enter a name for the application.",
                "max_length": "The name is too long: use at most %(limit_value)d "
                "characters (it has %(show_value)d).",
            },
        }

    def __init__(self, *args, project, **kwargs):
        self.project = project
        super().__init__(*args, **kwargs)
        self.instance.project = project
        self.fields["name"].validators.append(validate_visible_name)
        self.fields["name"].widget.attrs.update(
            {"autofocus": True, "autocomplete": "off"}
        )
        self.fields["description"].widget.attrs["rows"] = 3

    def clean_name(self):
        # CharField has already stripped surrounding whitespace.
        name = self.cleaned_data["name"]
        existing = find_live_application_by_name(
            self.project, name, exclude=self.instance
        )
        if existing is not None:
            raise forms.ValidationError(
                f"An application named “{existing.name}” already exists in this "
                "project (names are compared without regard to case). Choose "
                "another name."
            )
        return name


def find_live_application_by_name(project, name, exclude=None):
    """Return the project's live application whose name equals name, ignoring case.

    Names are compared by workspace.names.name_key, which folds every
    letter on SQLite too; the database constraint application_unique_name_ci
    compares Lower() and also ignores deleted applications.
    """
    applications = GenAIApplication.objects.live().filter(project=project)
    return find_same_name(applications, name, exclude=exclude)


class KeyIdsField(forms.Field):
    """A list of API key ids from checkboxes; ids are checked by the form."""

    widget = forms.CheckboxSelectMultiple

    def to_python(self, value):
        if not value:
            return []
        if not isinstance(value, list | tuple):
            value = [value]
        ids = []
        for raw in value:
            text = str(raw).strip()
            if not (text.isascii() and text.isdigit()):
                raise forms.ValidationError(
                    f"“{raw}” is not a valid API key id; pick keys from the list."
                )
            ids.append(int(text))
        return list(dict.fromkeys(ids))


class AttachKeysForm(forms.Form):
    """Pick keys of the project that belong to no application.

    Only active keys are attachable: a revoked or expired key can make no
    calls, and attaching it later would not move its past usage, which
    stays with the application that owned it at the time of each call.
    """

    keys = KeyIdsField(
        label="API keys",
        error_messages={"required": "Select at least one API key to attach."},
    )

    def __init__(self, *args, application, **kwargs):
        self.application = application
        super().__init__(*args, **kwargs)

    def clean_keys(self):
        ids = self.cleaned_data["keys"]
        found = {
            key.pk: key
            # An id beyond the column's range matches no key and is reported
            # as not found; SQLite cannot even bind it.
            for key in APIKey.objects.filter(
                pk__in=[key_id for key_id in ids if key_id <= MAX_ID]
            ).select_related("mapping__application")
        }
        errors = []
        keys = []
        for key_id in ids:
            key = found.get(key_id)
            error = self._rejection(key_id, key)
            if error:
                errors.append(error)
            else:
                keys.append(key)
        if errors:
            raise forms.ValidationError(errors)
        return keys

    def _rejection(self, key_id, key):
        # A key of another project gets the same message as a missing one,
        # so the form never reveals that it exists.
        if key is None or key.project_id != self.application.project_id:
            return f"API key id {key_id} was not found in this project."
        mapping = getattr(key, "mapping", None)
        if mapping is not None and mapping.application_id != self.application.pk:
            return (
                f"API key “{key.name}” ({key.prefix}…) already belongs to the "
                f"application “{mapping.application.name}”. Remove it there first."
            )
        if mapping is not None:
            # Already attached here: attaching again is a no-op.
            return None
        status = key.status
        if status != KeyStatus.ACTIVE:
            return (
                f"API key “{key.name}” ({key.prefix}…) is {status.label.lower()}; "
                "only active keys can be attached."
            )
        return None


class PickerFilterForm(KeySearchForm):
    """Search and provider/proxy filter of the key picker."""
