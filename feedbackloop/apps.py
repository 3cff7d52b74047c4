from django.apps import AppConfig


class FeedbackloopConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "feedbackloop"
    verbose_name = "feedbackloop"

    def ready(self) -> None:
        from django.contrib.auth import get_user_model
        from django.db.models.signals import m2m_changed, post_delete, post_save

        from feedbackloop.auth_backend import forget_user
        from feedbackloop.roles import forget_role

        User = get_user_model()
        # A changed group membership, permission or account clears the remembered role at once.
        m2m_changed.connect(forget_role, sender=User.groups.through, dispatch_uid="role-groups")
        m2m_changed.connect(
            forget_role, sender=User.user_permissions.through, dispatch_uid="role-perms"
        )
        post_save.connect(forget_role, sender=User, dispatch_uid="role-user")
        # A saved or deleted account is read from the database on its next request.
        post_save.connect(forget_user, sender=User, dispatch_uid="auth-user-saved")
        post_delete.connect(forget_user, sender=User, dispatch_uid="auth-user-deleted")
