{#- Generic tests written here because dbt hub packages cannot be installed. -#}

{#- Fails on rows where the column is negative (NULL passes; pair with not_null). -#}
{% test not_negative(model, column_name) %}
    select {{ column_name }}
    from {{ model }}
    where {{ column_name }} < 0
{% endtest %}

{#- Fails on rows where the boolean SQL expression is not true. -#}
{% test expression_is_true(model, expression) %}
    select *
    from {{ model }}
    where not coalesce(({{ expression }}), false)
{% endtest %}
