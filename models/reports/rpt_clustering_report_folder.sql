{#-
    One row: the folder this pipeline's report and pictures go to
    (macros/report_dir.sql). rpt_clustering_figures reads it and creates the
    folder when missing; rpt_clustering_summary writes its JSON there after.
-#}
{{ config(materialized='view', tags=['clustering']) }}

with

folder as (

    select
        '{{ report_dir() | replace("'", "''") }}' as report_dir,
        '{{ target.path | replace("'", "''") }}' as pipeline_database,

)

select * from folder
