with

source as (

    select * from {{ source('pipeline', 'datasets') }}

),

renamed as (

    select
        dataset_id,
        document_id,
        cluster,
        dataset_type,
        text,
        updated_at,
    from source

)

select * from renamed
