with

source as (

    select * from {{ source('pipeline', 'engineered_feature_values') }}

),

renamed as (

    select
        dataset_id,
        document_id,
        feature_name,
        feature_value,
        created_at,
        updated_at,
    from source

)

select * from renamed
