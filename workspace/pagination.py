"""Pagination shared by the paginated tables of the dashboard."""

from django.core.paginator import EmptyPage, Paginator


class FirstPageForLowNumbersPaginator(Paginator):
    """A Paginator that shows the first page for page numbers below 1.

    Paginator raises EmptyPage for ?page=0 and ?page=-1 as for a number past
    the end, and django-tables2's RequestConfig (3.0) shows the last page for
    every EmptyPage, which suits only numbers past the end.
    """

    def validate_number(self, number):
        try:
            return super().validate_number(number)
        except EmptyPage:
            # validate_number raises EmptyPage only after int() succeeded.
            if int(number) < 1:
                return 1
            raise


def paginate_options(per_page):
    """Return the `paginate` argument of django-tables2's RequestConfig."""
    return {"per_page": per_page, "paginator_class": FirstPageForLowNumbersPaginator}
